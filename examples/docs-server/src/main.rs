//! A document server on S3, the seed's example: anyone connected may list and read documents,
//! through the read-only IAM role `docs-read`; deleting one needs the operator's `docs:delete`
//! grant and runs through a role of its own, `docs-delete`. A prompt injection that steers the
//! read tools cannot delete anything, because their credentials cannot.
//!
//! ```sh
//! scripts/aws-emulator.sh start && eval "$(scripts/aws-emulator.sh env)"
//! cargo run -p docs-server -- --config examples/docs-server/mcp-lp.toml          # serve over stdio
//! cargo run -p docs-server -- --config examples/docs-server/mcp-lp.toml check    # validate
//! cargo run -p docs-server -- --config examples/docs-server/mcp-lp.toml inventory
//! ```

use aws_sdk_s3::error::ProvideErrorMetadata as _;
use mcp_lp::prelude::*;
use mcp_lp_aws::S3;
use serde::{Deserialize, Serialize};

/// Documents larger than this are not read into a tool result.
const MAX_DOCUMENT_BYTES: i64 = 1024 * 1024;
/// listDocuments returns at most this many keys.
const MAX_LISTED: i32 = 1000;

/// The `[app]` table of the configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The bucket holding the documents.
    bucket: String,
}

#[derive(Debug, Clone)]
struct Docs {
    bucket: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct DocumentKey {
    /// The document's key in the bucket, such as `public/welcome.md`.
    key: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct ListArguments {
    /// List only keys that start with this, such as `public/`.
    #[serde(default)]
    prefix: Option<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct DocumentList {
    /// The documents' keys, in S3's order (sorted).
    keys: Vec<String>,
    /// Whether more keys exist than were returned (at most 1000 are).
    truncated: bool,
}

/// Refuse keys S3 would refuse or that cannot name a document.
fn checked_key(key: &str) -> Result<&str, ToolError> {
    if key.is_empty() || key.len() > 1024 || key.chars().any(char::is_control) || key.ends_with('/')
    {
        return Err(ToolError::invalid_argument(
            "key",
            "must be 1 to 1024 bytes without control characters, and not end with `/`",
        ));
    }
    Ok(key)
}

#[mcp_lp::server(
    instructions = "Documents in S3. listDocuments and readDocument are read-only; deleteDocument needs the operator's grant and a person's approval of each call."
)]
impl Docs {
    /// List documents, optionally only those under a prefix.
    #[tool(
        name = "listDocuments",
        role = "docs-read",
        annotations(read_only_hint = true)
    )]
    async fn list_documents(
        &self,
        s3: S3,
        Parameters(args): Parameters<ListArguments>,
    ) -> Result<Json<DocumentList>, ToolError> {
        let page = s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .set_prefix(args.prefix)
            .max_keys(MAX_LISTED)
            .send()
            .await
            .map_err(|e| s3.error("ListObjectsV2", &e))?;
        let keys = page
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect();
        Ok(Json(DocumentList {
            keys,
            truncated: page.is_truncated().unwrap_or(false),
        }))
    }

    /// Read one document as text.
    #[tool(
        name = "readDocument",
        role = "docs-read",
        annotations(read_only_hint = true)
    )]
    async fn read_document(
        &self,
        s3: S3,
        Parameters(doc): Parameters<DocumentKey>,
    ) -> Result<String, ToolError> {
        let key = checked_key(&doc.key)?;
        let object = match s3.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(object) => object,
            Err(e) if e.code() == Some("NoSuchKey") => {
                return Err(ToolError::invalid_argument(
                    "key",
                    format!("no document `{key}`"),
                ));
            }
            Err(e) => return Err(s3.error("GetObject", &e)),
        };
        if object.content_length().unwrap_or(0) > MAX_DOCUMENT_BYTES {
            return Err(ToolError::new(format!(
                "document `{key}` is larger than {MAX_DOCUMENT_BYTES} bytes"
            )));
        }
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|_| ToolError::new(format!("reading document `{key}` was interrupted")))?
            .into_bytes();
        String::from_utf8(bytes.to_vec())
            .map_err(|_| ToolError::new(format!("document `{key}` is not UTF-8 text")))
    }

    /// Delete one document. Runs only when the operator granted `docs:delete` and a person
    /// holding `docs:approve` approved these arguments, with a role that can delete and do
    /// nothing else.
    #[tool(
        name = "deleteDocument",
        role = "docs-delete",
        requires = "docs:delete",
        approval = "docs:approve",
        timeout = "10s",
        annotations(destructive_hint = true, read_only_hint = false)
    )]
    async fn delete_document(
        &self,
        s3: S3,
        Parameters(doc): Parameters<DocumentKey>,
    ) -> Result<String, ToolError> {
        let key = checked_key(&doc.key)?;
        s3.delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| s3.error("DeleteObject", &e))?;
        Ok(format!("deleted document `{key}`"))
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    mcp_lp::cli::run(|config| async move {
        let settings: Settings = config.app()?;
        let aws = mcp_lp_aws::Aws::from_config(&config).await?;
        let docs = Docs {
            bucket: settings.bucket,
        };
        Ok(mcp_lp::Server::new(docs).provide(aws.roles()))
    })
    .await
}
