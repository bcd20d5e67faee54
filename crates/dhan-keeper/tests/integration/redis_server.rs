//! A real `redis-server` per test: a free port on 127.0.0.1, a temp dir, no persistence, killed
//! on drop. Stop/start keep the port (a restart comes back empty); pause/resume are SIGSTOP and
//! SIGCONT.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    password: Option<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with_password(None)
    }

    pub fn start_with_password(password: Option<&str>) -> Self {
        let mut last = String::new();
        for _ in 0..5 {
            let port =
                TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).expect("free port").port();
            let mut server = Self {
                port,
                password: password.map(str::to_string),
                dir: tempfile::tempdir().expect("tempdir"),
                child: None,
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => last = e, // the port was taken in between: try another
            }
        }
        panic!("redis-server did not start: {last}");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--logfile", "redis.log"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        let child = cmd.spawn().map_err(|e| {
            format!("cannot run redis-server ({e}); install it with: apt-get update && apt-get install -y redis-server")
        })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.answers() {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Err(format!("redis-server exited with {status}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop();
        Err("redis-server did not answer within 5 s".into())
    }

    /// Whether it answers PING (NOAUTH counts: it is up).
    fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 64];
        matches!(s.read(&mut buf), Ok(n) if n > 0 && (buf.starts_with(b"+PONG") || buf.starts_with(b"-NOAUTH")))
    }

    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    fn pid(&self) -> rustix::process::Pid {
        let id = self.child.as_ref().expect("redis-server is running").id();
        rustix::process::Pid::from_raw(i32::try_from(id).expect("pid")).expect("pid")
    }

    pub fn pause(&self) {
        rustix::process::kill_process(self.pid(), rustix::process::Signal::STOP).expect("SIGSTOP");
    }

    pub fn resume(&self) {
        rustix::process::kill_process(self.pid(), rustix::process::Signal::CONT).expect("SIGCONT");
    }

    /// Kills it (SIGKILL: nothing is saved, as with persistence off anyway).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn start_again(&mut self) {
        self.stop();
        self.spawn().expect("redis-server restarts on its port");
    }

    /// A plain connection for the test's own look at the data.
    pub fn raw(&self) -> redis::Connection {
        redis::Client::open(self.url()).expect("client").get_connection().expect("connection")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL ends a paused (SIGSTOPped) server too.
        self.stop();
    }
}
