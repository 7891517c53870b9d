//! A throwaway PostgreSQL cluster on loopback for the queue tests and benches: one per test
//! binary, in a temporary folder, on an ephemeral port, removed when the binary exits; a
//! fresh database per test.
//!
//! It needs Debian's `postgresql` package (the server binaries under
//! `/usr/lib/postgresql/*/bin`). When they are missing the tests FAIL saying how to install
//! them: they never pass silently. PostgreSQL refuses to run as root, so as root the cluster
//! runs as the `postgres` user (made by the package) through `runuser` and `setpriv`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// The running cluster.
pub struct Cluster {
    port: u16,
    // Closing this pipe (when the test binary exits, however it exits) tells the watchdog
    // shell to stop the server and remove the folder.
    _watchdog: Mutex<(Child, ChildStdin)>,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

const INSTALL: &str = "the PostgreSQL server binaries (initdb, postgres) are not installed; the \
    queue tests need them: run `apt-get install -y postgresql` (Debian/Ubuntu), or `.ci/test`, \
    which installs them and runs every test";

fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .filter(|bin| bin.join("initdb").exists() && bin.join("postgres").exists())
                .collect()
        })
        .unwrap_or_default();
    // The newest version: directories are named by major version.
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop().unwrap_or_else(|| panic!("{INSTALL}"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs `program args` as the cluster's user.
fn as_cluster_user(root: bool, program: &Path) -> Command {
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

type Served = (Child, ChildStdin, BufReader<std::process::ChildStderr>);

// The watchdog shell lives as long as the test binary (kept in `Cluster`), or is waited for
// after a failed start.
#[allow(clippy::zombie_processes)]
/// Starts the server on `port` under a watchdog shell: it waits for its stdin to close, then
/// stops the server and removes the folder (unless told `keep`, after a failed start).
fn serve(root: bool, bin: &Path, data: &Path, dir: &Path, port: u16) -> Result<Served, String> {
    let script = format!(
        "{postgres} -D '{data}' -p {port} -k '{dir}' -c listen_addresses=127.0.0.1 \
         -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 & \
         pid=$!; read line; kill -INT $pid 2>/dev/null; wait $pid; \
         [ \"$line\" = keep ] || rm -rf '{dir}'",
        // setpriv runs postgres in its own place (runuser would stay in between and not
        // pass the stop signal on).
        postgres = if root {
            format!(
                "setpriv --reuid=postgres --regid=postgres --init-groups -- {}",
                bin.join("postgres").display()
            )
        } else {
            bin.join("postgres").display().to_string()
        },
        data = data.display(),
        dir = dir.display(),
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut log = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = log.read_line(&mut line).unwrap();
        // A client turned away while the server starts ("the database system is starting
        // up": a worker trying a restarted cluster) is no failure of the server.
        if n == 0 || (line.contains("FATAL") && !line.contains("the database system is")) {
            seen.push_str(&line);
            // The server is gone: keep the folder for the next try.
            let _ = std::io::Write::write_all(&mut stdin, b"keep\n");
            drop(stdin);
            let _ = child.wait();
            return Err(seen);
        }
        seen.push_str(&line);
        if line.contains("ready to accept connections") {
            return Ok((child, stdin, log));
        }
    }
}

/// Removes the folders of earlier test clusters whose server is gone (a test binary killed
/// before its watchdog could clean up): only those whose `postmaster.pid` names a process
/// that no longer exists, so a cluster another test binary is running is left alone.
fn remove_stale() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with("mail-queue-pg-") {
            continue;
        }
        let pid_file = entry.path().join("data").join("postmaster.pid");
        let Ok(text) = std::fs::read_to_string(&pid_file) else {
            continue;
        };
        let Some(pid) = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A new cluster's folder and `initdb`'s data in it: the binaries, whether the server runs
/// as the `postgres` user, the folder and the data folder.
fn init() -> (PathBuf, bool, PathBuf, PathBuf) {
    remove_stale();
    let bin = bin_dir();
    let root = is_root();
    let dir = tempfile::Builder::new()
        .prefix("mail-queue-pg-")
        .tempdir()
        .unwrap()
        .keep();
    let data = dir.join("data");
    if root {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "could not hand {} to the `postgres` user; is the postgresql package installed?",
            dir.display()
        );
    }
    let init = as_cluster_user(root, &bin.join("initdb"))
        .args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "-D",
        ])
        .arg(&data)
        .output()
        .unwrap_or_else(|e| panic!("initdb could not run ({e}): {INSTALL}"));
    assert!(
        init.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    (bin, root, dir, data)
}

/// Keeps draining the server's log so that it never blocks on a full pipe.
fn drain(mut log: BufReader<std::process::ChildStderr>) {
    std::thread::spawn(move || {
        let mut sink = String::new();
        while log.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
    });
}

fn start() -> Cluster {
    let (bin, root, dir, data) = init();
    // Another process may take the port between `free_port` and the server's bind: try
    // another port then.
    let mut attempts = 0;
    let (port, child, stdin, log) = loop {
        let port = free_port();
        match serve(root, &bin, &data, &dir, port) {
            Ok((child, stdin, log)) => break (port, child, stdin, log),
            Err(seen) if attempts < 5 && seen.contains("could not bind") => attempts += 1,
            Err(seen) => panic!("PostgreSQL did not start:\n{seen}"),
        }
    };
    drain(log);
    Cluster {
        port,
        _watchdog: Mutex::new((child, stdin)),
    }
}

/// A cluster of one test's own, which it stops and starts again (the shared one serves the
/// tests running beside it). Dropping it stops the server and removes its folder.
#[allow(dead_code)] // the queue bench uses only the shared cluster
pub struct OwnCluster {
    bin: PathBuf,
    root: bool,
    dir: PathBuf,
    data: PathBuf,
    port: u16,
    /// The watchdog shell while the server runs.
    server: Option<(Child, ChildStdin)>,
}

#[allow(dead_code)]
impl OwnCluster {
    /// Initialises and starts a cluster on a free port.
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    /// As [`start`](Self::start), but a TCP sign-in as `role` needs its password
    /// (SCRAM-SHA-256); the test creates the role. `postgres` stays trusted.
    pub fn start_with_password_for(role: &str) -> Self {
        Self::start_with(|data| {
            // Rewritten in place, so that the file keeps its owner (the server's user).
            let hba = data.join("pg_hba.conf");
            let rules = std::fs::read_to_string(&hba).unwrap();
            let first = format!("host all {role} 127.0.0.1/32 scram-sha-256\n");
            std::fs::write(&hba, first + &rules).unwrap();
        })
    }

    /// As [`start`](Self::start), but the server also offers TLS with this certificate and
    /// key (PEM), written into its data folder as the server's user, who must own the key.
    pub fn start_with_tls(cert: &str, key: &str) -> Self {
        Self::start_with(|data| {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let owner = std::fs::metadata(data).unwrap();
            for (name, pem) in [("server.crt", cert), ("server.key", key)] {
                let path = data.join(name);
                std::fs::write(&path, pem).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
                std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid())).unwrap();
            }
            // Appended in place, so that the file keeps its owner.
            let conf = data.join("postgresql.conf");
            let mut settings = std::fs::read_to_string(&conf).unwrap();
            settings.push_str("\nssl = on\n");
            std::fs::write(&conf, settings).unwrap();
        })
    }

    /// Initialises a cluster, lets `prepare` change its data folder, and starts it.
    fn start_with(prepare: impl FnOnce(&Path)) -> Self {
        let (bin, root, dir, data) = init();
        prepare(&data);
        let mut cluster = Self {
            bin,
            root,
            dir,
            data,
            port: 0,
            server: None,
        };
        let mut attempts = 0;
        loop {
            cluster.port = free_port();
            match serve(
                root,
                &cluster.bin,
                &cluster.data,
                &cluster.dir,
                cluster.port,
            ) {
                Ok((child, stdin, log)) => {
                    drain(log);
                    cluster.server = Some((child, stdin));
                    return cluster;
                }
                Err(seen) if attempts < 5 && seen.contains("could not bind") => attempts += 1,
                Err(seen) => panic!("PostgreSQL did not start:\n{seen}"),
            }
        }
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Its port, the same after a restart.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (a fast shutdown: its sessions are ended), keeping the data; returns
    /// once it is down.
    pub fn stop(&mut self) {
        let (mut child, mut stdin) = self.server.take().expect("the server is running");
        std::io::Write::write_all(&mut stdin, b"keep\n").unwrap();
        drop(stdin);
        child.wait().unwrap();
    }

    /// Starts the stopped server again, on the same port; returns once it accepts
    /// connections.
    pub fn restart(&mut self) {
        assert!(self.server.is_none(), "the server is running");
        match serve(self.root, &self.bin, &self.data, &self.dir, self.port) {
            Ok((child, stdin, log)) => {
                drain(log);
                self.server = Some((child, stdin));
            }
            Err(seen) => panic!("PostgreSQL did not start again:\n{seen}"),
        }
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        match self.server.take() {
            // Closing the pipe stops the server and removes the folder.
            Some((mut child, stdin)) => {
                drop(stdin);
                let _ = child.wait();
            }
            None => {
                let _ = std::fs::remove_dir_all(&self.dir);
            }
        }
    }
}

/// The cluster, started at the first call.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(start)
}

impl Cluster {
    /// The URL of the `postgres` maintenance database.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A fresh, empty database; returns its URL.
    pub async fn database(&self) -> String {
        use mail_connector::queue::sqlx::{Connection, Executor, PgConnection};
        let name = format!(
            "t{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::SeqCst)
        );
        let mut admin = PgConnection::connect(&self.admin_url()).await.unwrap();
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        admin.close().await.unwrap();
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

/// A fresh database on the shared cluster.
pub async fn database() -> String {
    tokio::task::spawn_blocking(cluster).await.unwrap();
    cluster().database().await
}
