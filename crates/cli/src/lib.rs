//! The moss client CLI: bucket, object, GetBatch, config and job commands on top of `moss-client`.
//!
//! ```text
//! moss bucket create data
//! moss put ./images data/train             # recursive, bounded concurrency, progress bar
//! moss ls data/train
//! moss get data/train/0001.jpg ./0001.jpg  # or `-` for stdout
//! moss batch data/train/0001.jpg data/shards/s-0.tar/a.wav -o batch.tar
//! moss batch --list entries.txt --coer --extract ./out
//! moss config cluster get_batch.max_soft_errs=10
//! moss rm data --template 'tmp-{0000..9999}'  # jobs, with a progress bar
//! moss cp data backup --prefix train/
//! moss archive data data/shards/s-0.tar --template 'train/{000..999}.jpg'
//! moss show job --refresh 2
//! ```
use std::path::PathBuf;

use clap::{Args, Subcommand};
use moss_client::Client;

mod batch;
mod buckets;
mod cluster;
mod fmt;
mod jobs;
mod names;
mod objects;
mod progress;

/// Client commands of the `moss` binary.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list or destroy buckets
    Bucket {
        #[command(subcommand)]
        command: BucketCommand,
    },
    /// Upload a file, or a directory recursively, to BUCKET[/PREFIX]
    Put(PutArgs),
    /// Download an object to a file or to stdout
    Get(GetArgs),
    /// List the objects of a bucket (name and size)
    Ls(LsArgs),
    /// Fetch many objects and archived files as one archive, in request order (GetBatch)
    Batch(BatchArgs),
    /// Delete objects by name, list, template or prefix (a job, with progress)
    Rm(RmArgs),
    /// Copy a bucket, or some of its objects, to another bucket (a job, with progress)
    Cp(CpArgs),
    /// Bring objects of a remote bucket (s3://, gs://, az://) into the cluster (a job)
    Prefetch(PrefetchArgs),
    /// Drop the cluster's copies of a remote bucket's objects; the cloud keeps them (a job)
    Evict(RmArgs),
    /// Build a shard (.tar, .tgz, .zip, .tar.lz4) from objects, in the order given (a job)
    Archive(ArchiveArgs),
    /// Start, stop or wait for jobs
    Job {
        #[command(subcommand)]
        command: JobCommand,
    },
    /// Show or change configuration
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Show cluster activity
    Show {
        #[command(subcommand)]
        command: ShowCommand,
    },
    /// Node logs
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
}

/// `moss log …`
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Print a node's current log (its id from `moss show performance`, or `t[id]`/`p[id]`)
    Show {
        #[arg(value_name = "NODE")]
        node: String,
        /// `info` (everything) or `error` (warnings and errors)
        #[arg(long, default_value = "info")]
        severity: String,
    },
}

/// `moss bucket …`
#[derive(Debug, Subcommand)]
pub enum BucketCommand {
    /// Create buckets
    Create {
        /// Bucket names (`b` or `ais://b`)
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// List buckets
    Ls,
    /// Destroy buckets and everything in them
    Rm {
        /// Bucket names (`b` or `ais://b`)
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Rename a bucket (a job; objects move to their new owners in the background)
    Mv {
        #[arg(value_name = "OLD")]
        from: String,
        #[arg(value_name = "NEW")]
        to: String,
    },
    /// Show or change bucket properties
    #[command(subcommand)]
    Props(PropsCommand),
    /// Object count and sizes of a bucket (a job)
    Summary {
        #[arg(value_name = "NAME")]
        name: String,
        /// Only objects whose names start with this
        #[arg(long, default_value = "")]
        prefix: String,
    },
}

/// `moss bucket props …`
#[derive(Debug, Subcommand)]
pub enum PropsCommand {
    /// Print the bucket's properties (JSON)
    Show {
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Change properties, e.g. `ec.enabled=true ec.data_slices=2 ec.parity_slices=2`
    #[command(after_help = "\
Keys are AIStore's: ec.enabled, ec.data_slices, ec.parity_slices, ec.objsize_limit (bytes),
versioning.validate_warm_get, versioning.synchronize, features, ... Turning EC on for a bucket
that holds objects starts an ec-encode job; its id is printed (`moss show job ID`).")]
    Set {
        #[arg(value_name = "NAME")]
        name: String,
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
    },
}

/// Which objects a job acts on (one of these, or object names as arguments).
#[derive(Debug, Args)]
pub struct SelectArgs {
    /// A file with one object name per line (`-` for stdin)
    #[arg(long, value_name = "FILE")]
    pub list: Option<PathBuf>,
    /// A name template: `obj-{0000..9999}`, `{0..100..10}`, `shard-@999`
    #[arg(long, value_name = "TEMPLATE")]
    pub template: Option<String>,
    /// Every object whose name starts with PREFIX
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// Every object of the bucket
    #[arg(long)]
    pub all: bool,
}

/// `moss rm BUCKET [NAME...] [--list F | --template T | --prefix P | --all]`
#[derive(Debug, Args)]
pub struct RmArgs {
    #[arg(value_name = "BUCKET")]
    pub bucket: String,
    /// Object names
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    #[command(flatten)]
    pub select: SelectArgs,
}

/// `moss prefetch s3://BUCKET [NAME...] [--list F | --template T | --prefix P | --all] [--latest]`
#[derive(Debug, Args)]
pub struct PrefetchArgs {
    #[arg(value_name = "BUCKET")]
    pub bucket: String,
    /// Object names
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Also fetch again cached objects that changed in the cloud
    #[arg(long)]
    pub latest: bool,
}

/// `moss cp SRC DST [NAME...] [selection] [--prepend P] [--dry-run]`
#[derive(Debug, Args)]
#[command(after_help = "\
Without a selection (or with only --prefix) the whole bucket is copied (a copy-bck job); names,
--list or --template copy just those objects (copy-listrange). A missing destination bucket is
created.")]
pub struct CpArgs {
    #[arg(value_name = "SRC_BUCKET")]
    pub source: String,
    #[arg(value_name = "DST_BUCKET")]
    pub destination: String,
    /// Object names
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Prepended to every destination name
    #[arg(long, value_name = "TEXT")]
    pub prepend: Option<String>,
    /// Count what would be copied; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Transfers in flight per target (-1: one at a time)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub workers: Option<i64>,
    /// Keep going when an object fails
    #[arg(long)]
    pub coer: bool,
}

/// `moss archive SRC DST_BUCKET/NAME.tar [NAME...] [selection]`
#[derive(Debug, Args)]
pub struct ArchiveArgs {
    #[arg(value_name = "SRC_BUCKET")]
    pub source: String,
    /// The shard to write; its extension picks the format (.tar .tgz .tar.gz .zip .tar.lz4)
    #[arg(value_name = "DST_BUCKET/SHARD")]
    pub destination: String,
    /// Object names, in the order they go into the shard
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Name members BUCKET/OBJECT instead of OBJECT
    #[arg(long)]
    pub include_bucket: bool,
    /// Append to the shard if it exists
    #[arg(long)]
    pub append: bool,
    /// Skip missing objects instead of failing
    #[arg(long)]
    pub coer: bool,
}

/// `moss job …`
#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Start a job: lru, cleanup (cleanup-store), rebalance, or ec-encode / make-n-copies (with
    /// --bucket); prints its id
    Start {
        #[arg(value_name = "KIND")]
        kind: String,
        /// The bucket a bucket job (ec-encode, make-n-copies) acts on
        #[arg(long, value_name = "NAME")]
        bucket: Option<String>,
        /// Wait until it is done
        #[arg(long)]
        wait: bool,
    },
    /// Abort a job by id, or every running job of a kind
    Stop {
        #[arg(value_name = "ID|KIND")]
        job: String,
    },
    /// Wait until a job is done (or idle, for jobs that idle between work items)
    Wait {
        #[arg(value_name = "ID")]
        id: String,
    },
}

/// `moss put FILE|DIR BUCKET[/PREFIX]`
#[derive(Debug, Args)]
pub struct PutArgs {
    /// A file, or a directory to upload recursively
    #[arg(value_name = "FILE|DIR")]
    pub source: PathBuf,
    /// Destination: `BUCKET` or `BUCKET/NAME` for a file (`BUCKET/DIR/` keeps the file name);
    /// `BUCKET[/PREFIX]` for a directory (object name = PREFIX/relative path)
    #[arg(value_name = "BUCKET[/PREFIX]")]
    pub destination: String,
    /// Files uploaded at the same time
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// Files bigger than this go up as a multipart upload of parts this big, in MiB
    #[arg(long, value_name = "MiB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=5120))]
    pub part_size: u64,
    /// Parts of one file uploaded at the same time
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parts_parallel: u16,
}

/// `moss get BUCKET/OBJECT [DEST|-]`
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The object
    #[arg(value_name = "BUCKET/OBJECT")]
    pub object: String,
    /// Output file or directory (default: the object's base name here); `-` for stdout
    #[arg(value_name = "DEST|-")]
    pub destination: Option<String>,
    /// Get this file from inside the object (a TAR/TGZ/ZIP/TAR.LZ4 shard)
    #[arg(long, value_name = "PATH")]
    pub archpath: Option<String>,
}

/// `moss ls BUCKET[/PREFIX]`
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Bucket, optionally with a name prefix
    #[arg(value_name = "BUCKET[/PREFIX]")]
    pub target: String,
    /// Print sizes in bytes instead of IEC units
    #[arg(long)]
    pub bytes: bool,
    /// Also list the files inside shards (.tar, .tgz, .tar.gz, .zip, .tar.lz4) as SHARD/FILE
    #[arg(long)]
    pub archive: bool,
    /// Objects per request to the cluster (0 = the cluster's maximum); all pages are printed
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub page_size: u64,
}

/// `moss batch …`
#[derive(Debug, Args)]
#[command(after_help = "\
Entries are `bucket/object` or `bucket/shard.tar/path/in/shard` (split at the first .tar, .tgz,
.tar.gz, .zip or .tar.lz4 component followed by `/`). With --default-bucket, entries are object
names in that bucket; `ais://bucket/object` always names its bucket.

Examples:
  moss batch b/a.jpg b/shard-0.tar/x/1.wav -o out.tar
  moss batch --default-bucket b --list names.txt --coer --extract ./out
  moss batch --spec request.json --buffered -o out.tgz")]
pub struct BatchArgs {
    /// Entries to fetch, in order
    #[arg(value_name = "ENTRY")]
    pub entries: Vec<String>,
    /// A GetBatch request (JSON MossReq) to start from; `-` reads stdin
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// A file with one entry per line (blank lines and `#` comments skipped)
    #[arg(long, value_name = "FILE")]
    pub list: Option<PathBuf>,
    /// Bucket for entries that name none
    #[arg(long, value_name = "BUCKET")]
    pub default_bucket: Option<String>,
    /// Continue on error: missing items become empty `__404__/` entries
    #[arg(long)]
    pub coer: bool,
    /// Name archive entries by object name only (no bucket)
    #[arg(long)]
    pub onob: bool,
    /// Streaming response (the default unless --spec says otherwise)
    #[arg(long, conflicts_with = "buffered")]
    pub streaming: bool,
    /// Buffered response: metadata (sizes, error messages) first, then the archive
    #[arg(long)]
    pub buffered: bool,
    /// Write the archive as received; the extension picks the format
    /// (.tar .tgz .tar.gz .zip .tar.lz4)
    #[arg(
        short = 'o',
        long,
        value_name = "FILE",
        conflicts_with = "extract",
        required_unless_present = "extract"
    )]
    pub output: Option<PathBuf>,
    /// Write every entry as a file under DIR, named as in the archive
    #[arg(long, value_name = "DIR")]
    pub extract: Option<PathBuf>,
    /// Archive format to request with --extract (default: the spec's, else tar)
    #[arg(long, value_name = "FORMAT", requires = "extract")]
    pub format: Option<String>,
}

/// `moss config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the cluster configuration, print KEYs, or set KEY=VALUE pairs
    /// (e.g. get_batch.max_soft_errs=10)
    Cluster {
        #[arg(value_name = "KEY[=VALUE]")]
        pairs: Vec<String>,
    },
}

/// `moss show …`
#[derive(Debug, Subcommand)]
pub enum ShowCommand {
    /// Jobs on every target: GetBatch first (with its control lines), then all others
    Job {
        /// Only jobs of this kind (`get-batch`, `copy-objects`, …) or this job id
        #[arg(value_name = "KIND|ID")]
        which: Option<String>,
        /// Repeat every SECONDS until Ctrl-C
        #[arg(long, value_name = "SECONDS")]
        refresh: Option<f64>,
    },
    /// Per-target GetBatch counters (requests, objects, files, waits, errors)
    Getbatch,
    /// Per-target GETs, PUTs, bytes, errors and disk use (the SDK's `get_performance()`)
    Performance,
}

/// Runs a client command against `endpoint`; an https endpoint's certificate is checked as the
/// SDK does (`AIS_CLIENT_CA`, `AIS_SKIP_VERIFY_CRT`).
pub async fn run(endpoint: &str, command: Command) -> anyhow::Result<()> {
    let client = Client::with_trust(endpoint, &moss_client::Trust::from_env())?;
    match command {
        Command::Bucket { command } => buckets::run(&client, command).await,
        Command::Put(args) => objects::put(&client, args).await,
        Command::Get(args) => objects::get(&client, args).await,
        Command::Ls(args) => objects::ls(&client, args).await,
        Command::Batch(args) => batch::run(&client, args).await,
        Command::Rm(args) => jobs::rm(&client, args).await,
        Command::Cp(args) => jobs::cp(&client, args).await,
        Command::Prefetch(args) => jobs::prefetch(&client, args).await,
        Command::Evict(args) => jobs::evict(&client, args).await,
        Command::Archive(args) => jobs::archive(&client, args).await,
        Command::Job { command } => jobs::job(&client, command).await,
        Command::Config {
            command: ConfigCommand::Cluster { pairs },
        } => cluster::config(&client, &pairs).await,
        Command::Show {
            command: ShowCommand::Job { which, refresh },
        } => jobs::show_job(&client, which, refresh).await,
        Command::Show {
            command: ShowCommand::Getbatch,
        } => cluster::show_getbatch(&client).await,
        Command::Show {
            command: ShowCommand::Performance,
        } => cluster::show_performance(&client).await,
        Command::Log {
            command: LogCommand::Show { node, severity },
        } => cluster::log_show(&client, &node, &severity).await,
    }
}
