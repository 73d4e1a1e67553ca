//! Atomic writes and the temporary files they leave behind.
//!
//! Every file energyflow writes goes through [`write_atomic`]: a temporary
//! file `.NAME.tmp-PID` in the target's folder, flushed and synced, then
//! renamed over the target (and the folder synced, so the rename survives a
//! power cut). A reader sees the old file or the new one, never a torn one.
//!
//! Where the temporary files go:
//! - on success they become the target; on an error they are removed, and a
//!   panic unwinding through the write removes them too (a drop guard);
//! - an exit on a second Ctrl-C (or SIGTERM/SIGHUP) calls
//!   [`remove_temp_files`] first, which removes the ones in flight;
//! - a killed process (kill -9, power loss) cannot clean up: its files are
//!   removed by the next [`write_atomic`] to the same target, and by
//!   [`remove_stale_temp_files`] when a run folder is next opened.
//!
//! A temporary file counts as stale when the process named by its PID is no
//! longer running (Linux: no `/proc/PID`).

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Temporary files this process is writing right now.
static IN_FLIGHT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn in_flight() -> MutexGuard<'static, Vec<PathBuf>> {
    // A panic while holding the lock leaves only a list of paths behind.
    IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner())
}

/// One temporary file: registered while it exists, removed on drop unless
/// it was renamed into place.
struct TempFile {
    path: PathBuf,
    done: bool,
}

impl TempFile {
    fn new(path: PathBuf) -> Self {
        in_flight().push(path.clone());
        TempFile { path, done: false }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
        let mut list = in_flight();
        if let Some(i) = list.iter().position(|p| *p == self.path) {
            list.swap_remove(i);
        }
    }
}

/// Removes every temporary file this process is writing, and blocks any
/// new one from being started: for the exit path of a second signal, right
/// before `std::process::exit`. A write in progress then fails at its
/// rename, so its target keeps its old contents.
pub fn remove_temp_files() {
    let list = in_flight();
    for p in list.iter() {
        let _ = std::fs::remove_file(p);
    }
    // Held until the process exits: no writer may register a new file.
    std::mem::forget(list);
}

/// The folder a path lives in ("." for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// The temporary file name of `target` for process `pid`.
fn temp_name(target: &str, pid: u32) -> String {
    format!(".{target}.tmp-{pid}")
}

/// The target name and PID of a temporary file name, if it is one.
fn parse_temp_name(name: &str) -> Option<(&str, u32)> {
    let (target, pid) = name.strip_prefix('.')?.rsplit_once(".tmp-")?;
    if target.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((target, pid.parse().ok()?))
}

/// Whether process `pid` is running. Without /proc (not Linux) every
/// process counts as running, so nothing is removed by mistake.
pub fn process_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

/// Removes the stale temporary files in `dir`: those of processes that are
/// no longer running, and, with `ours_too`, those carrying this process's
/// PID (a dead process's PID reused by us: call it only where this process
/// has no write in flight, e.g. right after taking a run folder's lock).
/// `target` limits it to the temporary files of one file name. Returns the
/// names removed.
pub fn remove_stale_temp_files(dir: &Path, target: Option<&str>, ours_too: bool) -> Vec<String> {
    let me = std::process::id();
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some((of, pid)) = parse_temp_name(&name) else {
            continue;
        };
        let stale = if pid == me { ours_too } else { !process_alive(pid) };
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if stale && is_file && target.is_none_or(|t| t == of) && std::fs::remove_file(entry.path()).is_ok() {
            removed.push(name);
        }
    }
    removed.sort();
    removed
}

/// Writes `bytes` to `path` atomically (see the module docs). Stale
/// temporary files of the same target left by killed processes are removed
/// first.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .ok_or_else(|| Error::input(format!("{}: not a file path", path.display())))?
        .to_string_lossy()
        .to_string();
    remove_stale_temp_files(dir, Some(&name), false);
    let mut tmp = TempFile::new(dir.join(temp_name(&name, std::process::id())));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp.path)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp.path, path)
    })();
    result.map_err(|e| Error::io(path, e))?;
    tmp.done = true;
    // The rename itself is durable once the folder is synced (best effort:
    // not every platform can open a folder).
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_round_trip() {
        assert_eq!(
            parse_temp_name(&temp_name("model-1.safetensors", 42)),
            Some(("model-1.safetensors", 42))
        );
        assert_eq!(parse_temp_name(".metrics.jsonl.tmp-7"), Some(("metrics.jsonl", 7)));
        for not in ["metrics.jsonl", ".x.tmp-", ".x.tmp-12a", "x.tmp-3", "..tmp-3"] {
            assert_eq!(parse_temp_name(not), None, "{not}");
        }
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a folder: the rename fails after the temp file was written.
        let target = dir.path().join("sub");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("x"), b"keep").unwrap();
        assert!(write_atomic(&target, b"data").is_err());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("sub")]);
        assert!(in_flight().iter().all(|p| !p.starts_with(dir.path())));
    }

    #[test]
    fn stale_temporary_files_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // Above any Linux pid_max (2^22): never a running process.
        let dead = u32::MAX - 1;
        let me = std::process::id();
        for n in [
            temp_name("a.safetensors", dead),
            temp_name("b.jsonl", dead),
            temp_name("a.safetensors", me),
            "a.safetensors".to_string(),
        ] {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        // A write to a.safetensors removes that target's dead temp files only.
        write_atomic(&dir.path().join("a.safetensors"), b"new").unwrap();
        assert!(!dir.path().join(temp_name("a.safetensors", dead)).exists());
        assert!(dir.path().join(temp_name("b.jsonl", dead)).exists());
        // Ours was overwritten and renamed into place by the write itself.
        assert!(!dir.path().join(temp_name("a.safetensors", me)).exists());
        assert_eq!(std::fs::read(dir.path().join("a.safetensors")).unwrap(), b"new");
        std::fs::write(dir.path().join(temp_name("c", me)), b"x").unwrap();
        assert_eq!(
            remove_stale_temp_files(dir.path(), None, false),
            vec![temp_name("b.jsonl", dead)]
        );
        assert_eq!(
            remove_stale_temp_files(dir.path(), None, true),
            vec![temp_name("c", me)]
        );
        assert!(process_alive(me));
    }
}
