//! A notes server: anyone may list and read notes, but deleting one needs the operator's
//! `notes:delete` grant, which the model cannot produce.
//!
//! ```sh
//! cargo run -p notes-server -- --config examples/notes-server/mcp-lp.toml          # serve over stdio
//! cargo run -p notes-server -- --config examples/notes-server/mcp-lp.toml check    # validate
//! cargo run -p notes-server -- inventory                                           # what it can do
//! ```

use std::path::PathBuf;

use mcp_lp::prelude::*;
use serde::{Deserialize, Serialize};

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
