//! `moss bucket create|ls|rm`.
use anyhow::{Context as _, Result};
use moss_client::Client;

use crate::BucketCommand;
use crate::names;

pub async fn run(client: &Client, command: BucketCommand) -> Result<()> {
    match command {
        BucketCommand::Create { names: args } => {
            for arg in args {
                let bucket = names::bucket(&arg)?;
                client
                    .create_bucket(&bucket)
                    .await
                    .with_context(|| format!("create bucket {bucket}"))?;
                println!("created {bucket}");
            }
        }
        BucketCommand::Ls => {
            let mut buckets = client.list_buckets().await.context("list buckets")?;
            buckets.sort();
            for bck in buckets {
                println!("{}", bck.cname());
            }
        }
        BucketCommand::Rm { names: args } => {
            for arg in args {
                let bucket = names::bucket(&arg)?;
                client
                    .destroy_bucket(&bucket)
                    .await
                    .with_context(|| format!("destroy bucket {bucket}"))?;
                println!("destroyed {bucket}");
            }
        }
        BucketCommand::Mv { from, to } => crate::jobs::rename(client, &from, &to).await?,
        BucketCommand::Summary { name, prefix } => {
            crate::jobs::summary(client, &name, &prefix).await?
        }
    }
    Ok(())
}
