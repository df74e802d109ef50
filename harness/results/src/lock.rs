//! A cross-process lock on a file: `flock(2)` through `std::fs::File::lock`.
//!
//! The operating system releases the lock when its holder exits, however it exits (`kill -9`,
//! a node lost by a cluster), so a lock is never stale: there is no pid to check and nothing to
//! take over. On NFS, Linux emulates `flock` with POSIX byte-range locks, which the NFS lock
//! manager shares between nodes; that is what lets array tasks on many nodes share one results
//! and cache folder (docs/SCALING.md).
//!
//! The lock file holds `<host> <pid>` of its holder, for messages only. It is removed when the
//! holder lets go; a process that took the lock on a file that was removed meanwhile (its
//! holder let go between our `open` and our `lock`) sees that the path names another file now
//! and tries again, so two processes never both hold "the" lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A held lock; dropping it releases the lock and removes the file.
#[derive(Debug)]
pub struct LockFile {
    path: PathBuf,
    file: File,
}

fn err(path: &Path, what: &str, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// This machine's name (for the holder line).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether `file` is still the file at `path` (not removed and replaced meanwhile).
fn still_linked(path: &Path, file: &File) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

impl LockFile {
    /// Takes the lock now, or returns `None` when another process holds it.
    pub fn try_acquire(path: &Path) -> std::io::Result<Option<LockFile>> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(dir, "creating", e))?;
        }
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(|e| err(path, "opening the lock", e))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) => return Err(err(path, "locking", e)),
            }
            if !still_linked(path, &file) {
                continue;
            }
            let mut lock = LockFile {
                path: path.to_path_buf(),
                file,
            };
            lock.write_holder()
                .map_err(|e| err(path, "writing the lock", e))?;
            return Ok(Some(lock));
        }
    }

    /// Takes the lock, waiting for its holder as long as it takes; says once that it waits,
    /// and again every ten minutes.
    pub fn acquire(path: &Path) -> std::io::Result<LockFile> {
        let start = Instant::now();
        let mut told: Option<Instant> = None;
        loop {
            if let Some(lock) = Self::try_acquire(path)? {
                return Ok(lock);
            }
            if told.is_none_or(|t| t.elapsed() > Duration::from_secs(600)) {
                let waited = start.elapsed().as_secs();
                let holder = holder(path).unwrap_or_else(|| "another process".into());
                if waited == 0 {
                    eprintln!(
                        "kidbench: waiting for {} (held by {holder})",
                        path.display()
                    );
                } else {
                    eprintln!(
                        "kidbench: still waiting for {} after {} min (held by {holder})",
                        path.display(),
                        waited / 60
                    );
                }
                told = Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn write_holder(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        writeln!(self.file, "{} {}", host_name(), std::process::id())?;
        self.file.flush()
    }

    /// The path of the lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // Remove the file while still holding the lock: a waiter that opened it sees that it is
        // gone once it gets the lock, and opens the path again.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

/// Whether some process holds the lock at `path` now (no file: nobody).
pub fn is_held(path: &Path) -> std::io::Result<bool> {
    if !path.exists() {
        return Ok(false);
    }
    let file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(err(path, "opening the lock", e)),
    };
    match file.try_lock() {
        // Free: leave the file as it is (a holder that died left it; the next `acquire`
        // takes it over), and let go at once.
        Ok(()) => {
            let _ = file.unlock();
            Ok(false)
        }
        Err(TryLockError::WouldBlock) => Ok(true),
        Err(TryLockError::Error(e)) => Err(err(path, "locking", e)),
    }
}

/// `<host> <pid>` of the lock's holder as it wrote them, if readable.
pub fn holder(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| {
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next()) {
            (Some(host), Some(pid)) => format!("process {pid} on {host}"),
            _ => line.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("x.lock");
        let a = LockFile::try_acquire(&path).unwrap().expect("free lock");
        assert!(is_held(&path).unwrap());
        assert!(LockFile::try_acquire(&path).unwrap().is_none());
        let who = holder(&path).unwrap();
        assert!(
            who.contains(&std::process::id().to_string()),
            "holder line: {who}"
        );
        drop(a);
        assert!(!path.exists(), "the lock file is removed on release");
        assert!(!is_held(&path).unwrap());
        let b = LockFile::try_acquire(&path).unwrap();
        assert!(b.is_some());
    }

    #[test]
    fn a_file_left_by_a_dead_holder_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("y.lock");
        // What `kill -9` leaves: the file with a holder line, and no lock on it.
        std::fs::write(&path, "elsewhere 999999\n").unwrap();
        assert!(!is_held(&path).unwrap());
        let lock = LockFile::acquire(&path).unwrap();
        assert!(is_held(&path).unwrap());
        drop(lock);
    }

    #[test]
    fn a_waiter_gets_the_lock_when_the_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.lock");
        let first = LockFile::acquire(&path).unwrap();
        let p = path.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let l = LockFile::acquire(&p).unwrap();
            tx.send(()).unwrap();
            drop(l);
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(rx.try_recv().is_err(), "the waiter must not hold it yet");
        drop(first);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the waiter takes the lock once it is free");
        waiter.join().unwrap();
    }
}
