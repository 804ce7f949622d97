//! The recovery file: unconfirmed batches written at shutdown when the sink cannot be reached,
//! replayed (under their own ids) at the next start.
//!
//! The file is JSON, written to a temporary file beside it, `fsync`ed and renamed into place, so
//! it is either the old file or the whole new one:
//!
//! ```json
//! {"version": 1, "batches": [{"id": "…", "counts": [["views", 12], ["likes", -1]]}]}
//! ```

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};

use super::sink::{Batch, BatchId};

/// The format version written and understood.
const VERSION: u64 = 1;

/// The recovery file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// Reading failed.
    #[error("cannot read the write-behind recovery file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file is not a recovery file this version understands. It is left in place.
    #[error(
        "the write-behind recovery file {} is not valid ({reason}); move it away to start without it",
        path.display()
    )]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Writing failed.
    #[error("cannot write the write-behind recovery file {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// Checks at start that the recovery file at `path` could be written at shutdown, by creating
/// and removing the temporary file [`write`] would use, so an unwritable path stops the start
/// instead of losing the increments at the next outage.
///
/// # Errors
///
/// The temporary file cannot be created in the file's directory.
pub(crate) fn check_writable(path: &Path) -> Result<(), RecoveryError> {
    let temporary = temporary_path(path);
    File::create(&temporary)
        .and_then(|_| fs::remove_file(&temporary))
        .map_err(|source| RecoveryError::Write {
            path: path.to_owned(),
            source,
        })
}

/// Where [`write`] writes the file before it renames it into place.
fn temporary_path(path: &Path) -> PathBuf {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    PathBuf::from(temporary)
}

/// The batches in the recovery file at `path`; none if there is no file.
///
/// # Errors
///
/// The file exists but cannot be read or is not a valid recovery file.
pub(crate) fn read(path: &Path) -> Result<Vec<Batch>, RecoveryError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(RecoveryError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    parse(&text).map_err(|reason| RecoveryError::Malformed {
        path: path.to_owned(),
        reason,
    })
}

fn parse(text: &str) -> Result<Vec<Batch>, String> {
    let document: Value = serde_json::from_str(text).map_err(|error| error.to_string())?;
    if document["version"].as_u64() != Some(VERSION) {
        return Err(format!("expected \"version\": {VERSION}"));
    }
    let batches = document["batches"]
        .as_array()
        .ok_or("expected a \"batches\" array")?;
    batches
        .iter()
        .map(|batch| {
            let id = batch["id"].as_str().ok_or("a batch without an \"id\"")?;
            let counts = batch["counts"]
                .as_array()
                .ok_or("a batch without \"counts\"")?;
            let entries = counts
                .iter()
                .map(|pair| match pair.as_array().map(Vec::as_slice) {
                    Some([Value::String(name), delta]) => delta
                        .as_i64()
                        .map(|delta| (Box::from(name.as_str()), delta))
                        .ok_or_else(|| format!("the count of {name:?} is not a 64-bit integer")),
                    _ => Err("a count that is not [name, delta]".to_owned()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Batch::new(BatchId::new(id), entries))
        })
        .collect()
}

/// Replaces the recovery file at `path` with `batches`, durably.
///
/// # Errors
///
/// The file (or its temporary sibling) cannot be written, synced or renamed.
pub(crate) fn write(path: &Path, batches: &[Arc<Batch>]) -> Result<(), RecoveryError> {
    let document = json!({
        "version": VERSION,
        "batches": batches.iter().map(|batch| json!({
            "id": batch.id().as_str(),
            "counts": batch.entries().iter().map(|(name, delta)| json!([&**name, delta])).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let failed = |source| RecoveryError::Write {
        path: path.to_owned(),
        source,
    };
    let temporary = temporary_path(path);
    let mut file = File::create(&temporary).map_err(failed)?;
    file.write_all(document.to_string().as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(failed)?;
    drop(file);
    fs::rename(&temporary, path).map_err(failed)?;
    // The rename itself is durable once the directory is synced.
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(directory)
        .and_then(|directory| directory.sync_all())
        .map_err(failed)
}

/// Removes the recovery file once its batches are committed. A missing file is fine.
///
/// # Errors
///
/// The file exists and cannot be removed.
pub(crate) fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_survive_a_round_trip_with_their_ids() {
        let dir = std::env::temp_dir().join(format!("sidecache-recovery-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("recovery.json");
        assert_eq!(read(&path).expect("no file is no batches"), Vec::new());

        let batches = vec![
            Arc::new(Batch::new(
                BatchId::new("a-1"),
                vec![("views \"home\"".into(), 12), ("likes".into(), i64::MIN)],
            )),
            Arc::new(Batch::new(BatchId::new("a-2"), vec![("views".into(), 1)])),
        ];
        write(&path, &batches).expect("write");
        let back = read(&path).expect("read");
        assert_eq!(
            back,
            batches.iter().map(|b| (**b).clone()).collect::<Vec<_>>()
        );
        remove(&path).expect("remove");
        remove(&path).expect("removing twice is fine");
        assert!(!path.exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_malformed_file_is_an_error_naming_the_problem() {
        for (text, needle) in [
            ("not json", "expected"),
            ("{\"version\": 2, \"batches\": []}", "version"),
            ("{\"version\": 1}", "batches"),
            (
                "{\"version\": 1, \"batches\": [{\"id\": \"x\", \"counts\": [[\"a\", 1.5]]}]}",
                "64-bit",
            ),
            (
                "{\"version\": 1, \"batches\": [{\"counts\": []}]}",
                "\"id\"",
            ),
        ] {
            let reason = parse(text).expect_err(text);
            assert!(reason.contains(needle), "{text}: {reason}");
        }
    }
}
