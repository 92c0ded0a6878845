//! A child process watched while it runs: its stdout and stderr go through one pipe, in the order
//! it wrote them, into a transcript. Tests wait (with a deadline) for a line in it, such as the
//! address a process bound to port 0, and print the whole transcript when something fails.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The transcript so far, and whether the output has ended.
#[derive(Default)]
struct Transcript {
    text: String,
    ended: bool,
}

/// A running child process; killed when dropped.
pub struct Watched {
    child: Child,
    transcript: Arc<(Mutex<Transcript>, Condvar)>,
    reader: Option<JoinHandle<()>>,
}

impl Watched {
    /// Spawns `command` with stdin closed and stdout and stderr collected.
    pub fn spawn(mut command: Command) -> Watched {
        let (pipe, writer) = std::io::pipe().expect("a pipe for the child's output");
        command
            .stdin(Stdio::null())
            .stdout(writer.try_clone().expect("clone the pipe"))
            .stderr(writer);
        let child = command.spawn().expect("spawn the process");
        // The command holds our copies of the pipe's write end: without dropping it the output
        // would never end.
        drop(command);
        let transcript = Arc::new((Mutex::new(Transcript::default()), Condvar::new()));
        let sink = transcript.clone();
        let reader = std::thread::spawn(move || {
            let (lock, changed) = &*sink;
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut transcript = lock.lock().unwrap();
                transcript.text.push_str(&line);
                transcript.text.push('\n');
                changed.notify_all();
            }
            lock.lock().unwrap().ended = true;
            changed.notify_all();
        });
        Watched {
            child,
            transcript,
            reader: Some(reader),
        }
    }

    /// The process id (the group id too, when spawned with `process_group(0)`).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        self.transcript.0.lock().unwrap().text.clone()
    }

    /// Waits up to `patience` for a line for which `find` gives a value; panics with the
    /// transcript when none comes (or the process ends first).
    pub fn wait_for_line<T>(
        &self,
        what: &str,
        patience: Duration,
        find: impl Fn(&str) -> Option<T>,
    ) -> T {
        self.find_line(patience, find).unwrap_or_else(|| {
            panic!(
                "{what}: not printed within {patience:?}; output:\n{}",
                self.output()
            )
        })
    }

    /// Waits up to `patience` for a line for which `find` gives a value; `None` when none comes
    /// (or the process ends first).
    pub fn find_line<T>(&self, patience: Duration, find: impl Fn(&str) -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + patience;
        let (lock, changed) = &*self.transcript;
        let mut transcript = lock.lock().unwrap();
        loop {
            if let Some(found) = transcript.text.lines().find_map(&find) {
                return Some(found);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if transcript.ended || left.is_zero() {
                return None;
            }
            transcript = changed.wait_timeout(transcript, left).unwrap().0;
        }
    }

    /// The exit status, if the process has ended.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("query the child")
    }

    /// Waits up to `patience` for the process to exit; panics with the transcript if it does not.
    /// Afterwards [`Watched::output`] holds everything it printed.
    pub fn wait(&mut self, patience: Duration) -> ExitStatus {
        let status =
            crate::wait::wait_until(patience, "the process exits", || match self.try_wait() {
                Some(status) => Ok(status),
                None => Err(format!("still running; output:\n{}", self.output())),
            });
        // The process is gone, so the pipe is at EOF (unless a grandchild holds it).
        if let Some(reader) = self.reader.take() {
            reader.join().ok();
        }
        status
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}
