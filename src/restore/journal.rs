//! The journal of a restore: an append-only JSON-lines record of each stage's start and end
//! (mode 0600, fsynced per line), and what `--resume` reads back from it. Owns the file format
//! and the rule that a journal continues only the run it was written for (plan, backup,
//! variables and target). Does not decide what to do with a stage's state: `restore` does.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dump::TableRows;
use crate::error::{Error, Result};
use crate::plan::Stage;

/// What a journal line records. Written as the same lowercase words as before this was an
/// enum, so journals stay readable in both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Event {
    /// The first line: the run's fingerprint and target.
    Plan,
    Start,
    Finish,
    Fail,
}

/// One journal line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub event: Event,
    pub stage: usize,
    pub name: String,
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<Vec<TableRows>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The plan entry: which server, database and user the run restores into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The restore stage's: the databases the dump restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub databases: Option<Vec<String>>,
    /// The restore stage's: it ran to the end of the stream with this many SQL errors (psql
    /// went on past them), so it is not done for `--resume`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_errors: Option<u64>,
}

impl Entry {
    pub fn new(event: Event, stage: &Stage) -> Entry {
        Entry {
            event,
            stage: stage.number,
            name: stage.name.clone(),
            at: now(),
            fingerprint: None,
            error: None,
            tables: None,
            sha256: None,
            target: None,
            databases: None,
            sql_errors: None,
        }
    }
}

fn now() -> String {
    crate::time::now_rfc3339()
}

/// Where a stage stands according to the journal.
pub(crate) enum StageState {
    NotStarted,
    Finished(Entry),
    /// The restore ran to the end of the stream with SQL errors: not done (with
    /// `--accept-restore-errors` such a restore is `Finished`).
    FinishedWithErrors(Entry),
    Failed(String, String),
    Interrupted(String),
}

/// An append-only JSON-lines record of stage starts and ends (mode 0600, fsynced per line).
pub(crate) struct JournalFile {
    pub path: PathBuf,
    file: File,
    entries: Vec<Entry>,
    /// `--accept-restore-errors`: a restore that ended with SQL errors counts as done.
    pub accept_restore_errors: bool,
}

impl JournalFile {
    pub fn open(path: &Path, fingerprint: &str, target: &str, resume: bool) -> Result<JournalFile> {
        let jerr = |reason: String| Error::Journal {
            path: path.to_path_buf(),
            reason,
        };
        let mut entries = Vec::new();
        if let Ok(f) = File::open(path) {
            for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
                let line = line.map_err(|e| jerr(e.to_string()))?;
                if line.trim().is_empty() {
                    continue;
                }
                // A torn last line (the process died mid-write) is ignored.
                match serde_json::from_str::<Entry>(&line) {
                    Ok(e) => entries.push(e),
                    Err(e) => {
                        return Err(jerr(format!("line {} is not a journal entry: {e}", i + 1)))
                    }
                }
            }
        }
        match (entries.is_empty(), resume) {
            (false, false) => {
                return Err(jerr(
                    "it holds an earlier run: pass --resume to continue that run, or remove the file to start over".into(),
                ))
            }
            (true, true) => {
                return Err(jerr("--resume needs the journal of an earlier run, and this one is empty or missing".into()))
            }
            (false, true) => {
                let first = entries.first();
                let fp = first.and_then(|e| e.fingerprint.clone());
                if fp.as_deref() != Some(fingerprint) {
                    let was = first.and_then(|e| e.target.clone());
                    return Err(jerr(match was {
                        Some(was) if was != target => format!(
                            "it was written for a restore into {was}, and this run restores into {target}; \
                             --resume only continues the same run, into the same target. Nothing was changed"
                        ),
                        _ => "it was written for another plan, backup, target or variables; --resume only \
                              continues the same run. Nothing was changed"
                            .into(),
                    }));
                }
            }
            (true, false) => {}
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| jerr(e.to_string()))?;
        if entries.is_empty() {
            let e = Entry {
                event: Event::Plan,
                stage: 0,
                name: "plan".into(),
                at: now(),
                fingerprint: Some(fingerprint.into()),
                error: None,
                tables: None,
                sha256: None,
                target: Some(target.into()),
                databases: None,
                sql_errors: None,
            };
            writeln!(file, "{}", serde_json::to_string(&e).expect("serializes"))
                .and_then(|_| file.sync_data())
                .map_err(|e| jerr(e.to_string()))?;
            entries.push(e);
        }
        Ok(JournalFile {
            path: path.to_path_buf(),
            file,
            entries,
            accept_restore_errors: false,
        })
    }

    pub fn append(&mut self, e: Entry) -> Result<()> {
        writeln!(
            self.file,
            "{}",
            serde_json::to_string(&e).expect("serializes")
        )
        .and_then(|_| self.file.sync_data())
        .map_err(|err| Error::Journal {
            path: self.path.clone(),
            reason: err.to_string(),
        })?;
        self.entries.push(e);
        Ok(())
    }

    pub fn state(&self, stage: usize) -> StageState {
        match self.entries.iter().rev().find(|e| e.stage == stage) {
            None => StageState::NotStarted,
            Some(e)
                if e.event == Event::Finish
                    && e.sql_errors.unwrap_or(0) > 0
                    && !self.accept_restore_errors =>
            {
                StageState::FinishedWithErrors(e.clone())
            }
            Some(e) if e.event == Event::Finish => StageState::Finished(e.clone()),
            Some(e) if e.event == Event::Fail => {
                StageState::Failed(e.at.clone(), e.error.clone().unwrap_or_default())
            }
            Some(e) => StageState::Interrupted(e.at.clone()),
        }
    }

    pub fn finished(&self, stage: usize) -> bool {
        matches!(self.state(stage), StageState::Finished(_))
    }
}
