//! A PostgreSQL server of the tests' own: Debian's `postgresql` package (`make test-deps`),
//! initdb in a temporary folder, started on a free loopback port the first time a test asks,
//! stopped when the test process exits. Each test gets a database of its own. PostgreSQL
//! refuses to run as root, so as root it runs as the `postgres` user. Shared by the
//! repository tests (`api/src/db/tests.rs`) and the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

struct Server {
    dir: PathBuf,
    port: u16,
    /// `postgres` (as root: `runuser`, which waits for it).
    process: std::sync::Mutex<std::process::Child>,
}

static SERVER: OnceLock<Server> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// A new, empty database on the tests' server: its URL.
pub fn database() -> String {
    let server = SERVER.get_or_init(start);
    let port = server.port.to_string();
    let name = format!("t{}_{}", std::process::id(), DATABASES.fetch_add(1, Ordering::Relaxed));
    let created = Command::new("psql")
        .args(["-q", "-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-d", "postgres"])
        .args(["-c", &format!("CREATE DATABASE {name}")])
        .status()
        .expect("run psql");
    assert!(created.success(), "creating a test database failed");
    format!("postgres://postgres@127.0.0.1:{port}/{name}")
}

/// The newest PostgreSQL server programs installed.
fn bin_dir() -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql").ok().into_iter().flatten().flatten();
    let mut dirs: Vec<(u32, PathBuf)> = versions
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("postgres").exists())
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, bin)| bin).expect("PostgreSQL server not installed: run `make test-deps` (Debian's postgresql)")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `program` with `args`, as the `postgres` user when we are root.
fn as_postgres(program: &Path, args: &[&str]) -> Command {
    let mut cmd = if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    };
    cmd.args(args);
    cmd
}

fn start() -> Server {
    let bin = bin_dir();
    let dir = std::env::temp_dir().join(format!("hawker-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    if is_root() {
        let chown = Command::new("chown").arg("postgres:postgres").arg(&dir).status().unwrap();
        assert!(chown.success(), "chown the PostgreSQL folder");
    }
    let data = dir.join("data");
    let data_arg = data.to_str().unwrap();
    let initdb = as_postgres(&bin.join("initdb"), &["-D", data_arg, "-U", "postgres", "-A", "trust", "-E", "UTF8"])
        .args(["--no-sync", "--no-instructions"])
        .stdout(Stdio::null())
        .status()
        .expect("run initdb");
    assert!(initdb.success(), "initdb failed");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let port_arg = port.to_string();
    // Durability settings off: a test database is thrown away.
    let process = as_postgres(
        &bin.join("postgres"),
        &[
            "-D",
            data_arg,
            "-p",
            &port_arg,
            "-k",
            dir.to_str().unwrap(),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=300",
        ],
    )
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(dir.join("server.log")).unwrap())
    .spawn()
    .expect("start postgres");
    // SAFETY: registering a plain extern "C" function.
    unsafe { libc::atexit(stop) };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = Command::new("pg_isready").args(["-q", "-h", "127.0.0.1", "-p", &port_arg]).status();
        if ready.is_ok_and(|s| s.success()) {
            break;
        }
        assert!(Instant::now() < deadline, "PostgreSQL did not start; see {}", dir.join("server.log").display());
        std::thread::sleep(Duration::from_millis(100));
    }
    Server { dir, port, process: std::sync::Mutex::new(process) }
}

/// At exit: an immediate shutdown of the postmaster (SIGQUIT), then its folder goes.
extern "C" fn stop() {
    let Some(server) = SERVER.get() else { return };
    let pid = std::fs::read_to_string(server.dir.join("data/postmaster.pid")).ok();
    if let Some(pid) = pid.as_deref().and_then(|p| p.lines().next()).and_then(|p| p.trim().parse::<i32>().ok()) {
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(pid, libc::SIGQUIT) };
    }
    if let Ok(mut process) = server.process.lock() {
        let deadline = Instant::now() + Duration::from_secs(5);
        while process.try_wait().is_ok_and(|exited| exited.is_none()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = std::fs::remove_dir_all(&server.dir);
}
