//! Real-client compatibility tests and the benchmark driver for vltava.
//!
//! This library is the shared harness: it spawns the `vltava` broker binary,
//! waits for its readiness line (`accepting connections addr=HOST:PORT`) on the
//! process output, hands out the bootstrap address, and can SIGKILL / restart the
//! broker on the same data directory. Dropping a [`Broker`] kills the process.
//!
//! Readiness is event-driven: we read the broker's stdout line by line until the
//! readiness line shows up (or the process exits, or a deadline passes). There is
//! no sleep-polling of the port anywhere.
//!
//! The [`kafka`] module holds small rdkafka helpers shared by the integration
//! tests and the benchmark driver.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub mod cluster;
pub mod history;
pub mod kafka;
pub mod txn;
pub mod txn_history;
pub mod txn_reads;
pub mod txn_workload;
pub mod workload;

/// The line the broker logs once it accepts connections.
pub const READY_MARKER: &str = "accepting connections";

/// Command-line arguments that make the broker fsync every append before it
/// acknowledges it (needed for crash-durability tests).
pub const FLUSH_ALWAYS_ARGS: &[&str] = &["--flush", "always"];

/// How long a broker may take from spawn to its readiness line.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How many output lines of the broker are kept for diagnostics.
const LOG_RING: usize = 400;

/// The repository root (the parent of this package's directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("compat-tests has a parent directory")
        .to_path_buf()
}

/// The broker binary: `$VLTAVA_BIN`, else `<repo>/target/debug/vltava`.
pub fn broker_bin() -> PathBuf {
    match std::env::var_os("VLTAVA_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => repo_root().join("target").join("debug").join("vltava"),
    }
}

/// How to start a broker.
#[derive(Clone, Debug)]
pub struct BrokerOptions {
    pub bin: PathBuf,
    /// `--flush always`: fsync before acknowledging (crash tests).
    pub flush_always: bool,
    /// Extra arguments appended to the command line.
    pub extra_args: Vec<String>,
    pub ready_timeout: Duration,
    /// `RUST_LOG` for the broker.
    pub rust_log: String,
    /// The broker's open-file limit (`ulimit -n`, soft and hard), if not inherited.
    pub nofile: Option<u64>,
    /// Where the broker keeps its data (e.g. a small tmpfs); a fresh temporary directory if `None`.
    pub data_dir: Option<PathBuf>,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        BrokerOptions {
            bin: broker_bin(),
            flush_always: false,
            extra_args: Vec::new(),
            ready_timeout: DEFAULT_READY_TIMEOUT,
            rust_log: std::env::var("VLTAVA_TEST_RUST_LOG").unwrap_or_else(|_| "info".into()),
            nofile: None,
            data_dir: None,
        }
    }
}

/// Shared, bounded buffer of the broker's output (stdout and stderr).
#[derive(Clone, Default)]
pub(crate) struct LogRing(Arc<Mutex<VecDeque<String>>>);

impl LogRing {
    pub(crate) fn push(&self, line: String) {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() == LOG_RING {
            q.pop_front();
        }
        q.push_back(line);
    }
    pub(crate) fn dump(&self) -> String {
        let q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        q.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// A running (or killed) broker process owned by a test.
pub struct Broker {
    opts: BrokerOptions,
    child: Option<Child>,
    data_dir: PathBuf,
    /// Keeps the temporary data directory alive (deleted on drop).
    _tmp: Option<tempfile::TempDir>,
    addr: String,
    logs: LogRing,
    startup: Duration,
    starts: u32,
    last_pid: Option<libc::pid_t>,
}

impl Broker {
    /// Start a broker with default options on a fresh temporary data directory.
    pub fn start() -> Broker {
        Self::start_with(BrokerOptions::default())
    }

    /// Start a broker that fsyncs before acknowledging (`--flush always`).
    pub fn start_flush_always() -> Broker {
        Self::start_with(BrokerOptions {
            flush_always: true,
            ..BrokerOptions::default()
        })
    }

    /// Start a broker on a fresh temporary data directory; panics (with the
    /// broker's output) when it does not become ready.
    pub fn start_with(opts: BrokerOptions) -> Broker {
        Self::try_start_with(opts).unwrap_or_else(|e| panic!("{e:#}"))
    }

    pub fn try_start_with(opts: BrokerOptions) -> anyhow::Result<Broker> {
        let tmp = tempfile::Builder::new()
            .prefix("vltava-compat-")
            .tempdir()?;
        let data_dir = opts
            .data_dir
            .clone()
            .unwrap_or_else(|| tmp.path().join("data"));
        let mut b = Broker {
            opts,
            child: None,
            data_dir,
            _tmp: Some(tmp),
            addr: String::new(),
            logs: LogRing::default(),
            startup: Duration::ZERO,
            starts: 0,
            last_pid: None,
        };
        b.spawn("127.0.0.1:0")?;
        Ok(b)
    }

    /// The bootstrap address, `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> &str {
        &self.addr
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Time from spawn to the readiness line of the last (re)start.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The last lines the broker printed.
    pub fn logs(&self) -> String {
        self.logs.dump()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL the broker and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL on Unix
            let _ = c.wait();
        }
    }

    /// Graceful stop: SIGTERM, then wait (up to `timeout`) for the process to
    /// exit; returns its exit status. After the deadline it is SIGKILLed and an
    /// error is returned.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let Some(mut c) = self.child.take() else {
            anyhow::bail!("broker is not running");
        };
        unsafe {
            libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
        }
        // Event-driven wait: a helper thread blocks in wait() and reports the status.
        let (tx, rx) = mpsc::channel();
        let waiter = thread::spawn(move || {
            let st = c.wait();
            let _ = tx.send(());
            (c, st)
        });
        let done = rx.recv_timeout(timeout).is_ok();
        if !done {
            if let Some(pid) = self.pid_hint() {
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        let (_c, st) = waiter.join().expect("waiter thread");
        let st = st?;
        if !done {
            anyhow::bail!(
                "broker did not exit within {timeout:?} of SIGTERM (killed; {st})\n{}",
                self.logs.dump()
            );
        }
        Ok(st)
    }

    fn pid_hint(&self) -> Option<libc::pid_t> {
        self.last_pid
    }

    /// Start the broker again on the same data directory. It first tries the
    /// same address (so old bootstrap strings stay valid); if that port cannot
    /// be bound any more it falls back to an ephemeral port. Always use
    /// [`Broker::bootstrap`] after a restart.
    pub fn restart(&mut self) {
        self.kill9();
        let same = self.addr.clone();
        if let Err(first) = self.spawn(&same) {
            let logs = self.logs.dump();
            if logs.contains("in use") || logs.contains("AddrInUse") {
                eprintln!("restart on {same} failed ({first:#}); retrying on an ephemeral port");
                self.spawn("127.0.0.1:0")
                    .unwrap_or_else(|e| panic!("{e:#}"));
            } else {
                panic!("{first:#}");
            }
        }
    }

    fn spawn(&mut self, listen: &str) -> anyhow::Result<()> {
        let bin = &self.opts.bin;
        if !bin.exists() {
            anyhow::bail!(
                "broker binary {} does not exist: run `cargo build` at the repo root or set VLTAVA_BIN",
                bin.display()
            );
        }
        let mut cmd = Command::new(bin);
        cmd.arg("--listen")
            .arg(listen)
            .arg("--data-dir")
            .arg(&self.data_dir);
        if self.opts.flush_always {
            cmd.args(FLUSH_ALWAYS_ARGS);
        }
        cmd.args(&self.opts.extra_args)
            .env("RUST_LOG", &self.opts.rust_log)
            .env("NO_COLOR", "1")
            .env_remove("VLTAVA_BIN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(n) = self.opts.nofile {
            use std::os::unix::process::CommandExt;
            let limit = libc::rlimit {
                rlim_cur: n as libc::rlim_t,
                rlim_max: n as libc::rlim_t,
            };
            // SAFETY: setrlimit is async-signal-safe; it runs in the forked child before exec.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let cmdline = format!("{cmd:?}");
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| anyhow::anyhow!("spawning {cmdline}: {e}"))?;
        self.starts += 1;
        self.last_pid = Some(child.id() as libc::pid_t);
        let generation = self.starts;
        let (tx, rx) = mpsc::channel::<Option<String>>();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        pump(stdout, self.logs.clone(), generation, Some(tx.clone()));
        pump(stderr, self.logs.clone(), generation, Some(tx));
        self.child = Some(child);

        let deadline = started + self.opts.ready_timeout;
        let mut eofs = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Some(addr)) => {
                    self.startup = started.elapsed();
                    self.addr = addr;
                    return Ok(());
                }
                Ok(None) => {
                    // One of the two streams closed; both closing = the process is gone.
                    eofs += 1;
                    if eofs == 2 {
                        let status = self.child.as_mut().and_then(|c| c.wait().ok());
                        self.child = None;
                        anyhow::bail!(
                            "broker exited before it was ready ({status:?}); command: {cmdline}\n--- broker output ---\n{}",
                            self.logs.dump()
                        );
                    }
                }
                Err(_) => {
                    self.kill9();
                    anyhow::bail!(
                        "broker printed no `{READY_MARKER} addr=...` line within {:?}; command: {cmdline}\n--- broker output ---\n{}",
                        self.opts.ready_timeout,
                        self.logs.dump()
                    );
                }
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if thread::panicking() && std::env::var_os("VLTAVA_QUIET_LOGS").is_none() {
            eprintln!(
                "--- last broker output ({}) ---\n{}\n--- end of broker output ---",
                self.addr,
                self.logs.dump()
            );
        }
        self.kill9();
    }
}

/// Read one output stream of the broker line by line into the log ring, and
/// report the readiness address (first time only) and EOF through `tx`.
pub(crate) fn pump<R: Read + Send + 'static>(
    stream: R,
    logs: LogRing,
    generation: u32,
    tx: Option<mpsc::Sender<Option<String>>>,
) {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        let mut tx = tx;
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = strip_ansi(&String::from_utf8_lossy(&buf))
                .trim_end()
                .to_string();
            if let Some(addr) = parse_ready_line(&line) {
                if let Some(t) = tx.take() {
                    let _ = t.send(Some(addr));
                }
            }
            logs.push(format!("[{generation}] {line}"));
        }
        if let Some(t) = tx {
            let _ = t.send(None);
        }
    });
}

/// Extract `HOST:PORT` from a line containing `accepting connections addr=HOST:PORT`.
pub fn parse_ready_line(line: &str) -> Option<String> {
    let line = strip_ansi(line);
    let at = line.find(READY_MARKER)?;
    let rest = &line[at..];
    let a = rest.find("addr=")? + "addr=".len();
    let addr: String = rest[a..]
        .trim_start_matches(['"', '\''])
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '\'' && *c != ',')
        .collect();
    if addr.contains(':') {
        Some(addr)
    } else {
        None
    }
}

/// Remove ANSI escape sequences (in case the broker colours its logs anyway).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c2 in chars.by_ref() {
                    if c2.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// A topic name that is unique across tests and runs.
pub fn unique_topic(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

/// Memory and CPU figures of a process, from `/proc/<pid>/status` and `/proc/<pid>/stat`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcStats {
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub cpu_secs: f64,
}

pub fn proc_stats(pid: u32) -> anyhow::Result<ProcStats> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may contain spaces; fields after the closing paren are fixed.
    let after = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("bad /proc/{pid}/stat"))?;
    let f: Vec<&str> = after.split_whitespace().collect();
    // after ')' : state(3) ppid(4) ... utime is field 14, stime 15 => indexes 11, 12
    let utime: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let stime: u64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    Ok(ProcStats {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        cpu_secs: (utime + stime) as f64 / hz,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ready_lines() {
        let l = "2025-01-01T00:00:00.000000Z  INFO vltava::server: accepting connections addr=127.0.0.1:40123";
        assert_eq!(parse_ready_line(l).as_deref(), Some("127.0.0.1:40123"));
        let l = "\u{1b}[2m2025\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m accepting connections \u{1b}[3maddr\u{1b}[0m\u{1b}[2m=\u{1b}[0m127.0.0.1:9092 node_id=1";
        assert_eq!(parse_ready_line(l).as_deref(), Some("127.0.0.1:9092"));
        let l = r#"INFO accepting connections addr="127.0.0.1:5""#;
        assert_eq!(parse_ready_line(l).as_deref(), Some("127.0.0.1:5"));
        assert_eq!(parse_ready_line("INFO starting addr=127.0.0.1:1"), None);
    }

    #[test]
    fn reads_own_proc_stats() {
        let s = proc_stats(std::process::id()).unwrap();
        assert!(s.rss_kib > 0 && s.hwm_kib >= s.rss_kib);
    }
}
