//! A notes server: anyone may list and read notes, but deleting one needs the operator's
//! `notes:delete` grant, which the model cannot produce. `preview_note` shows how a tool asks
//! the client for input: through a multi-round-trip result for MCP 2026-07-28 clients, whose
//! state the checkpoint seals.
//!
//! ```sh
//! cargo run -p notes-server -- --config examples/notes-server/mcp-lp.toml          # serve over stdio
//! cargo run -p notes-server -- --config examples/notes-server/mcp-lp.toml check    # validate
//! cargo run -p notes-server -- inventory                                           # what it can do
//! ```

use std::path::PathBuf;

use mcp_lp::prelude::*;
use rmcp::handler::server::tool::{InputResponses, RequestState};
use rmcp::model::{
    CallToolResponse, CallToolResult, ContentBlock, ElicitRequest, ElicitRequestParams,
    ElicitationSchema, InputRequest, InputRequiredResult, ProtocolVersion, RequestMetaObject,
};
use serde::{Deserialize, Serialize};

/// How many lines `preview_note` shows when the client is not asked, or does not answer.
const PREVIEW_LINES: usize = 5;

/// The most lines `preview_note` shows.
const MAX_PREVIEW_LINES: i64 = 100;

/// The state `preview_note` hands the client with its question. The checkpoint seals it to this
/// call, so its return proves the answer belongs to the question this tool asked.
const ASKED_LINES: &str = "asked-lines";

/// The `[app]` table of the configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The directory holding one `<name>.md` file per note.
    notes_dir: PathBuf,
}

#[derive(Debug, Clone)]
struct Notes {
    dir: PathBuf,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct NoteName {
    /// The note's name: 1 to 64 characters of a-z, 0-9, - and _.
    name: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct NoteList {
    /// The names of all notes, sorted.
    names: Vec<String>,
}

impl Notes {
    fn from_config(config: &mcp_lp::Config) -> Result<Self, mcp_lp::cli::BuildError> {
        let settings: Settings = config.app()?;
        let dir = match config.path().parent() {
            Some(base) => base.join(&settings.notes_dir),
            None => settings.notes_dir,
        };
        if !dir.is_dir() {
            return Err(format!(
                "{}: key `app.notes_dir`: {} is not a directory",
                config.path().display(),
                dir.display()
            )
            .into());
        }
        Ok(Self { dir })
    }

    /// The file of the note called `name`, refusing names that could leave the directory.
    fn note_path(&self, name: &str) -> Result<PathBuf, ToolError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid {
            return Err(ToolError::invalid_argument(
                "name",
                "must be 1 to 64 characters of a-z, 0-9, - and _",
            ));
        }
        Ok(self.dir.join(format!("{name}.md")))
    }
}

/// Round one of `preview_note`: ask how many lines, handing out the state [`ASKED_LINES`].
fn ask_lines(name: &str) -> CallToolResponse {
    let schema = ElicitationSchema::builder()
        .required_integer("lines", 1, MAX_PREVIEW_LINES)
        .build()
        .expect("a form with one bounded integer is a valid schema");
    let question = InputRequest::Elicitation(ElicitRequest::new(
        ElicitRequestParams::FormElicitationParams {
            meta: None,
            message: format!("How many lines of `{name}` should be shown?"),
            requested_schema: schema,
        },
    ));
    let requests = [("lines".to_owned(), question)].into_iter().collect();
    InputRequiredResult::new(Some(requests), Some(ASKED_LINES.into())).into()
}

fn not_found(name: &str) -> ToolError {
    ToolError::invalid_argument("name", format!("no note is called `{name}`"))
}

#[mcp_lp::server(instructions = "A notes store. Deleting a note needs the operator's grant.")]
impl Notes {
    /// List the names of all notes.
    #[tool(annotations(read_only_hint = true))]
    async fn list_notes(&self) -> Result<Json<NoteList>, ToolError> {
        let mut entries = tokio::fs::read_dir(&self.dir)
            .await
            .map_err(|_| ToolError::new("the notes directory cannot be read"))?;
        let mut names = Vec::new();
        while let Ok(Some(entry)) = entries.next_entry().await {
            let file_name = entry.file_name();
            if let Some(name) = file_name.to_str().and_then(|f| f.strip_suffix(".md")) {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(Json(NoteList { names }))
    }

    /// Read one note.
    #[tool(annotations(read_only_hint = true))]
    async fn read_note(&self, Parameters(note): Parameters<NoteName>) -> Result<String, ToolError> {
        let path = self.note_path(&note.name)?;
        tokio::fs::read_to_string(path)
            .await
            .map_err(|_| not_found(&note.name))
    }

    /// Show the first lines of a note. A client speaking MCP 2026-07-28 is asked how many; an
    /// older client is shown the first five.
    #[tool(annotations(read_only_hint = true))]
    async fn preview_note(
        &self,
        Parameters(note): Parameters<NoteName>,
        meta: RequestMetaObject,
        RequestState(state): RequestState,
        InputResponses(answers): InputResponses,
    ) -> Result<CallToolResponse, ToolError> {
        let path = self.note_path(&note.name)?;
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|_| not_found(&note.name))?;
        let stateless = meta
            .protocol_version()
            .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str());
        let lines = match (state.as_deref(), answers) {
            // The answer to the question asked, or the default when the user declined.
            (Some(ASKED_LINES), Some(answers)) => answers
                .get("lines")
                .and_then(|answer| answer.get("content")?.get("lines")?.as_i64())
                .filter(|n| (1..=MAX_PREVIEW_LINES).contains(n))
                .map_or(PREVIEW_LINES, |n| n as usize),
            _ if stateless => return Ok(ask_lines(&note.name)),
            _ => PREVIEW_LINES,
        };
        let preview: Vec<&str> = text.lines().take(lines).collect();
        let result = CallToolResult::success(vec![ContentBlock::text(preview.join("\n"))]);
        Ok(result.into())
    }

    /// Delete one note. Runs only when the operator granted `notes:delete`.
    #[tool(
        requires = "notes:delete",
        timeout = "5s",
        annotations(destructive_hint = true, read_only_hint = false)
    )]
    async fn delete_note(
        &self,
        Parameters(note): Parameters<NoteName>,
    ) -> Result<String, ToolError> {
        let path = self.note_path(&note.name)?;
        tokio::fs::remove_file(path)
            .await
            .map_err(|_| not_found(&note.name))?;
        Ok(format!("deleted note `{}`", note.name))
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    mcp_lp::cli::run(|config| async move { Ok(Notes::from_config(&config)?.into()) }).await
}
