//! Outputs must not destroy inputs: the one check every command that
//! writes a user-named file runs before it reads or computes anything.
//!
//! Paths are compared as the file system sees them, not as they are
//! spelled: `./texts.jsonl`, `texts.jsonl`, a symbolic link and a hard link
//! to it are all the same file. An output that does not exist yet is
//! compared through its folder's canonical path. An existing output that is
//! not a regular file (a folder, a device such as /dev/null, a FIFO, a
//! socket) is refused: the atomic rename would replace it with a regular
//! file.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// A file (or folder) a command reads, with the flag that names it.
#[derive(Debug, Clone, Copy)]
pub struct Read<'a> {
    /// How the user named it: "--input", "--model folder", "checkpoint weights".
    pub label: &'a str,
    pub path: &'a Path,
}

/// What kind of non-regular file sits at a path (None for a regular file).
pub(super) fn special_kind(meta: &std::fs::Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        return None;
    }
    if t.is_dir() {
        return Some("a folder");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_char_device() || t.is_block_device() {
            return Some("a device");
        }
        if t.is_fifo() {
            return Some("a FIFO");
        }
        if t.is_socket() {
            return Some("a socket");
        }
    }
    Some("not a regular file")
}

/// The canonical path `output` would have once written.
fn canonical_output(label: &str, output: &Path) -> Result<PathBuf> {
    if output.exists() {
        return std::fs::canonicalize(output).map_err(|e| Error::io(output, e));
    }
    let name = output
        .file_name()
        .ok_or_else(|| Error::input(format!("{label} {}: not a file path", output.display())))?;
    let dir = super::atomic::parent_dir(output);
    let dir = std::fs::canonicalize(dir).map_err(|_| {
        Error::input(format!(
            "{label} {}: folder {} does not exist",
            output.display(),
            dir.display()
        ))
    })?;
    Ok(dir.join(name))
}

/// True when `a` and `b` are the same file (same device and inode).
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        a.dev() == b.dev() && a.ino() == b.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
}

/// Refuses to write `output` (named by the flag `label`) when it exists and
/// is not a regular file, or when writing it would replace one of `reads`:
/// the same file, however spelled, or an existing file inside a folder
/// that is read. The message names the file that would be lost.
pub fn check_output(label: &str, output: &Path, reads: &[Read]) -> Result<()> {
    let shown = output.display();
    let out_meta = std::fs::metadata(output).ok();
    if let Some(kind) = out_meta.as_ref().and_then(special_kind) {
        return Err(Error::input(format!(
            "{label} {shown} is {kind}; refusing to replace it with a regular file"
        )));
    }
    let out = canonical_output(label, output)?;
    for r in reads {
        let Ok(canon) = std::fs::canonicalize(r.path) else {
            // Not there: reading it fails later, naming it.
            continue;
        };
        let Ok(in_meta) = std::fs::metadata(&canon) else {
            continue;
        };
        let lost = if in_meta.is_dir() {
            out_meta.is_some() && out.starts_with(&canon)
        } else {
            out == canon || out_meta.as_ref().is_some_and(|m| same_file(m, &in_meta))
        };
        if lost {
            let what = if in_meta.is_dir() {
                format!("a file of {} {}", r.label, r.path.display())
            } else {
                format!("{} {}", r.label, r.path.display())
            };
            return Err(Error::input(format!(
                "{label} {shown} is {what}; writing it would destroy it"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_that_would_destroy_inputs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("texts.jsonl");
        std::fs::write(&input, b"x").unwrap();
        let reads = [Read {
            label: "--input",
            path: &input,
        }];
        // The same file spelled differently, and through a hard link.
        let spelled = dir.path().join(".").join("texts.jsonl");
        let e = check_output("--output", &spelled, &reads).unwrap_err().to_string();
        assert!(
            e.contains("--input") && e.contains("texts.jsonl") && e.contains("destroy"),
            "{e}"
        );
        let link = dir.path().join("link.jsonl");
        std::fs::hard_link(&input, &link).unwrap();
        assert!(check_output("--output", &link, &reads).is_err());
        // Another file, existing or not, is fine.
        check_output("--output", &dir.path().join("new.jsonl"), &reads).unwrap();
        std::fs::write(dir.path().join("old.jsonl"), b"y").unwrap();
        check_output("--output", &dir.path().join("old.jsonl"), &reads).unwrap();
        // A folder that is read: replacing a file in it is refused, adding one is not.
        let model = dir.path().join("model");
        std::fs::create_dir(&model).unwrap();
        std::fs::write(model.join("config.json"), b"{}").unwrap();
        let reads = [Read {
            label: "--model",
            path: &model,
        }];
        let e = check_output("--output", &model.join("config.json"), &reads)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a file of --model"), "{e}");
        check_output("--output", &model.join("new.safetensors"), &reads).unwrap();
    }

    #[test]
    fn non_regular_targets_and_missing_folders_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = check_output("--output", dir.path(), &[]).unwrap_err().to_string();
        assert!(e.contains("is a folder"), "{e}");
        #[cfg(unix)]
        {
            let e = check_output("--output", Path::new("/dev/null"), &[])
                .unwrap_err()
                .to_string();
            assert!(e.contains("/dev/null is a device"), "{e}");
        }
        let e = check_output("--output", &dir.path().join("no/such/x.safetensors"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
    }
}
