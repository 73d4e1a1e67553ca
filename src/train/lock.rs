//! The run folder's lock: one writer at a time.
//!
//! A run holds `OUT/run.lock` for its whole life with an exclusive advisory
//! lock (`File::try_lock`, flock on Linux) and writes its PID and command
//! line into it, so a second writer is refused naming the running process.
//! The operating system releases the lock when the process ends, however it
//! ends: a lock file left by a killed process is simply taken over (and
//! reported, since its presence means that run did not finish cleanly).
//! A run that ends normally removes the file, while still holding the lock.
//!
//! Not for readers: `eval` and `infer` read checkpoints without the lock;
//! a checkpoint's commit is atomic (see `checkpoint`).

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Name of the lock file in a run folder.
pub const LOCK_FILE: &str = super::plan::names::LOCK;

/// A held run-folder lock; released (and its file removed) on drop.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
    /// The folder, when this lock created it (removed on drop if still empty).
    created: Option<PathBuf>,
    /// What a dead holder left in the file: put back on drop unless the
    /// run went ahead ([`RunLock::confirm`]), so a refused start does not
    /// erase the sign that a run was killed there.
    restore: Option<String>,
}

/// Who held a lock, as its file says, kept to one short line.
fn holder(text: &str) -> String {
    let mut lines = text.lines();
    let pid = lines.next().unwrap_or("").trim();
    let cmd: String = lines.next().unwrap_or("").trim().chars().take(160).collect();
    let pid = if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) {
        pid
    } else {
        "?"
    };
    if cmd.is_empty() {
        format!("process {pid}")
    } else {
        format!("process {pid} ({cmd})")
    }
}

/// The same file: the one locked is still the one at its path.
fn same_inode(a: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (a.metadata(), std::fs::metadata(path)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (a, path);
        true
    }
}

impl RunLock {
    /// Takes the lock of run folder `dir` (created if needed). Refuses, in
    /// one line naming the holder, when another process holds it. Returns
    /// the lock and, when a process that is gone left its lock file behind,
    /// who that was.
    pub fn acquire(dir: &Path) -> Result<(RunLock, Option<String>)> {
        let created = (!dir.exists()).then(|| dir.to_path_buf());
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(LOCK_FILE);
        // A holder that finishes removes the file after we opened it: the
        // lock we then get is on a removed file, so open it again.
        for _ in 0..16 {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let mut text = String::new();
                    let _ = file.read_to_string(&mut text);
                    return Err(Error::input(format!(
                        "{} is in use by {}; wait for it to finish or stop it, or choose another --out",
                        dir.display(),
                        holder(&text)
                    )));
                }
                Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
            }
            if !same_inode(&file, &path) {
                continue;
            }
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let restore = (!text.trim().is_empty()).then_some(text);
            let previous = restore.as_deref().map(holder);
            let args: Vec<String> = std::env::args().collect();
            let me = format!("{}\n{}\n", std::process::id(), args.join(" "));
            let write = |f: &mut File| -> std::io::Result<()> {
                f.set_len(0)?;
                f.rewind()?;
                f.write_all(me.as_bytes())?;
                f.sync_all()
            };
            write(&mut file).map_err(|e| Error::io(&path, e))?;
            let lock = RunLock {
                file,
                path,
                created,
                restore,
            };
            return Ok((lock, previous));
        }
        Err(Error::input(format!(
            "{}: the run lock keeps changing hands; is another run starting there?",
            path.display()
        )))
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The run goes ahead: the file is removed when the lock is dropped.
    pub fn confirm(&mut self) {
        self.restore = None;
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        if let Some(text) = self.restore.take() {
            let _ = self.file.set_len(0);
            let _ = self.file.rewind();
            let _ = self.file.write_all(text.as_bytes());
            let _ = self.file.unlock();
            return;
        }
        // Removed while still held, then released when the file closes.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
        if let Some(dir) = &self.created {
            // Only succeeds when nothing was written there (a refused run).
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let (lock, previous) = RunLock::acquire(&run).unwrap();
        assert_eq!(previous, None);
        let text = std::fs::read_to_string(lock.path()).unwrap();
        assert!(text.starts_with(&format!("{}\n", std::process::id())), "{text}");
        // flock conflicts between two opens even within one process.
        let e = RunLock::acquire(&run).unwrap_err().to_string();
        assert!(
            e.contains("is in use by process") && e.contains(&std::process::id().to_string()),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1);
        drop(lock);
        assert!(!run.join(LOCK_FILE).exists());
        // The folder this lock created is removed again when left empty.
        assert!(!run.exists());
    }

    #[test]
    fn a_lock_left_by_a_dead_process_is_taken_over_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), "4000000\nenergyflow train --out x\n").unwrap();
        let (lock, previous) = RunLock::acquire(dir.path()).unwrap();
        assert_eq!(previous.as_deref(), Some("process 4000000 (energyflow train --out x)"));
        drop(lock);
        // Not confirmed (a refused start): the dead holder's note is put back.
        let (mut lock, previous) = RunLock::acquire(dir.path()).unwrap();
        assert_eq!(previous.as_deref(), Some("process 4000000 (energyflow train --out x)"));
        lock.confirm();
        drop(lock);
        assert!(!dir.path().join(LOCK_FILE).exists());
        assert!(dir.path().exists(), "a folder the lock did not create stays");
        // Hostile contents stay one short line.
        assert_eq!(holder("x\ny\nz"), "process ? (y)");
        assert_eq!(holder(&"9".repeat(5)), "process 99999");
        assert_eq!(
            holder(&format!("1\n{}", "a".repeat(500))).len(),
            "process 1 ()".len() + 160
        );
    }
}
