//! `moss bucket create|ls|rm`.
use anyhow::{Context as _, Result};
use moss_client::Client;

use crate::names;
use crate::{BucketCommand, PropsCommand};

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
        BucketCommand::Props(PropsCommand::Show { name }) => {
            let bucket = names::bucket(&name)?;
            let props = client
                .bucket_props(&bucket)
                .await
                .with_context(|| format!("props of bucket {bucket}"))?;
            println!("{}", serde_json::to_string_pretty(&props)?);
        }
        BucketCommand::Props(PropsCommand::Set { name, pairs }) => {
            let bucket = names::bucket(&name)?;
            let value = props_value(&pairs)?;
            let job = client
                .set_bucket_props(&bucket, value)
                .await
                .with_context(|| format!("set props of bucket {bucket}"))?;
            println!("props of {bucket} changed");
            if !job.trim().is_empty() {
                println!(
                    "started job {} (`moss show job {}`)",
                    job.trim(),
                    job.trim()
                );
            }
        }
        BucketCommand::Summary { name, prefix } => {
            crate::jobs::summary(client, &name, &prefix).await?
        }
    }
    Ok(())
}

/// `section.key=value` pairs as the nested object `set-bprops` takes (values as strings, which
/// the server parses per key).
fn props_value(pairs: &[String]) -> Result<serde_json::Value> {
    let mut value = serde_json::Map::new();
    for pair in pairs {
        let (key, v) = pair
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .with_context(|| format!("invalid argument {pair:?}: expected KEY=VALUE"))?;
        let v = serde_json::Value::String(v.trim().to_string());
        match key.trim().split_once('.') {
            Some((section, name)) => {
                let entry = value
                    .entry(section.to_string())
                    .or_insert_with(|| serde_json::Value::Object(Default::default()));
                let Some(section) = entry.as_object_mut() else {
                    anyhow::bail!("{key}: {section} is set both as a value and as a section");
                };
                section.insert(name.to_string(), v);
            }
            None => {
                value.insert(key.trim().to_string(), v);
            }
        }
    }
    Ok(serde_json::Value::Object(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_become_sections() {
        let pairs = ["ec.enabled=true", "ec.data_slices=3", "features=0"].map(String::from);
        assert_eq!(
            props_value(&pairs).unwrap(),
            serde_json::json!({"ec": {"enabled": "true", "data_slices": "3"}, "features": "0"})
        );
        assert!(props_value(&["ec".to_string()]).is_err());
    }
}
