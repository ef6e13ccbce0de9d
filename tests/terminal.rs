//! Terminals: the console socket protocol (runc's recvtty, containerd and
//! conmon receive the pty master over SCM_RIGHTS), `consoleSize`, and the
//! pty relay of a foreground `run`/`exec -t` under a real terminal.
mod common;
use common::*;
use serde_json::{Value, json};
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// ---- the console socket -------------------------------------------------------

/// The pty master a runtime sends over the console socket; panics with the runtime's
/// output if it exits without sending one.
fn recv_master(cs: &ConsoleSocket, mut sp: Spawned) -> (Pty, Spawned) {
    let (bytes, mut fds) = match cs.receive(&mut sp) {
        Some(m) => m,
        None => panic!(
            "runtime exited without sending the pty master: {:#?}",
            sp.wait()
        ),
    };
    assert!(bytes > 0, "the message names the terminal");
    assert_eq!(fds.len(), 1, "exactly one fd over SCM_RIGHTS: {fds:?}");
    let master = fds.remove(0);
    // It is a pty master: TIOCGPTN answers.
    let mut n: libc::c_uint = 0;
    let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) };
    assert_eq!(
        r,
        0,
        "received fd is not a pty master: {}",
        std::io::Error::last_os_error()
    );
    (Pty::new(master), sp)
}

// ---- a pty master, read with a deadline ---------------------------------------

struct Pty {
    master: OwnedFd,
    seen: Vec<u8>,
    eof: bool,
}

impl Pty {
    fn new(master: OwnedFd) -> Pty {
        Pty {
            master,
            seen: Vec::new(),
            eof: false,
        }
    }

    fn send(&self, s: &str) {
        let mut b = s.as_bytes();
        while !b.is_empty() {
            let n = unsafe { libc::write(self.master.as_raw_fd(), b.as_ptr().cast(), b.len()) };
            assert!(n > 0, "write to pty: {}", std::io::Error::last_os_error());
            b = &b[n as usize..];
        }
    }

    /// Reads what is there within `ms`; false once the other side is gone.
    fn pump(&mut self, ms: i32) -> bool {
        if self.eof {
            return false;
        }
        let mut pfd = libc::pollfd {
            fd: self.master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r <= 0 {
            return true;
        }
        let mut buf = [0u8; 4096];
        let n = unsafe { libc::read(self.master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            self.seen.extend_from_slice(&buf[..n as usize]);
            true
        } else {
            // 0 or EIO: every slave fd is closed.
            self.eof = true;
            false
        }
    }

    fn text_from(&self, mark: usize) -> String {
        strip_ansi(&String::from_utf8_lossy(
            &self.seen[mark.min(self.seen.len())..],
        ))
    }

    fn mark(&self) -> usize {
        self.seen.len()
    }

    /// Waits until a line after `mark` is exactly `want`.
    #[track_caller]
    fn expect_line_from(&mut self, mark: usize, want: &str) {
        let start = Instant::now();
        loop {
            if has_line(&self.text_from(mark), want) {
                return;
            }
            let alive = self.pump(100);
            if !alive && !has_line(&self.text_from(mark), want) {
                panic!(
                    "terminal closed before {want:?} appeared; transcript:\n{:?}",
                    self.text_from(0)
                );
            }
            assert!(
                start.elapsed() < CMD_DEADLINE,
                "{want:?} never appeared; transcript:\n{:?}",
                self.text_from(0)
            );
        }
    }

    #[track_caller]
    fn expect_line(&mut self, want: &str) {
        self.expect_line_from(0, want)
    }

    /// Waits until `pred` holds for the text after `mark`.
    #[track_caller]
    fn expect(&mut self, mark: usize, what: &str, pred: impl Fn(&str) -> bool) {
        let start = Instant::now();
        while !pred(&self.text_from(mark)) {
            let alive = self.pump(100);
            assert!(
                alive || pred(&self.text_from(mark)),
                "terminal closed before {what}; transcript:\n{:?}",
                self.text_from(0)
            );
            assert!(
                start.elapsed() < CMD_DEADLINE,
                "never saw {what}; transcript:\n{:?}",
                self.text_from(0)
            );
        }
    }

    /// Reads until every slave fd is closed.
    #[track_caller]
    fn read_to_eof(&mut self) {
        let start = Instant::now();
        while self.pump(100) {
            assert!(
                start.elapsed() < CMD_DEADLINE,
                "terminal never closed; transcript:\n{:?}",
                self.text_from(0)
            );
        }
    }
}

/// Drops CSI and two-byte escape sequences (busybox's line editor emits some).
fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\x1b' {
            if it.peek() == Some(&'[') {
                it.next();
                for d in it.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            } else {
                it.next();
            }
            continue;
        }
        out.push(c);
    }
    out
}

fn has_line(text: &str, want: &str) -> bool {
    text.split(['\r', '\n']).any(|l| l.trim() == want)
}

/// Waits for the shell's prompt (`# ` for root) so typed input is not
/// swallowed by a terminal mode change.
#[track_caller]
fn wait_prompt(p: &mut Pty, mark: usize) {
    p.expect(mark, "a shell prompt", |t| {
        t.trim_end_matches(' ').ends_with('#')
    });
}

// ---- a real terminal for a foreground runtime ----------------------------------

/// Opens a pty pair (both ends close-on-exec) with the given size.
fn open_pty(rows: u16, cols: u16) -> (OwnedFd, OwnedFd) {
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(m >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        let master = OwnedFd::from_raw_fd(m);
        assert_eq!(libc::grantpt(m), 0);
        assert_eq!(libc::unlockpt(m), 0);
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(m, name.as_mut_ptr(), name.len()), 0);
        let s = libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        assert!(s >= 0, "open slave: {}", std::io::Error::last_os_error());
        let slave = OwnedFd::from_raw_fd(s);
        set_size(&master, rows, cols);
        (master, slave)
    }
}

fn set_size(fd: &OwnedFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    assert_eq!(r, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
}

/// The runtime in the foreground of a new session whose controlling
/// terminal (and stdio) is a fresh pty of `rows`x`cols`, as in a terminal
/// emulator.
struct Interactive {
    child: Child,
    pty: Pty,
}

impl Interactive {
    fn spawn(env: &Env, args: &[&str], rows: u16, cols: u16) -> Interactive {
        let (master, slave) = open_pty(rows, cols);
        let mut cmd = Command::new(runtime());
        cmd.arg("--root")
            .arg(&env.root)
            .args(args)
            .current_dir("/")
            .env("TERM", "xterm")
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn the runtime on a pty");
        // Drop our copies of the slave: EOF on the master then means the
        // runtime (and everything it shared the terminal with) is gone.
        drop(cmd);
        Interactive {
            child,
            pty: Pty::new(master),
        }
    }

    /// Waits for the runtime to exit, draining the terminal meanwhile.
    fn wait(mut self) -> (i32, String) {
        let start = Instant::now();
        loop {
            self.pty.pump(50);
            if let Some(st) = self.child.try_wait().unwrap() {
                let t = Instant::now();
                while self.pty.pump(50) && t.elapsed() < Duration::from_secs(5) {}
                return (exit_code(st), self.pty.text_from(0));
            }
            if start.elapsed() > CMD_DEADLINE {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "runtime did not exit; transcript:\n{:?}",
                    self.pty.text_from(0)
                );
            }
        }
    }
}

/// A `terminal: true` bundle running `args`.
fn tty_bundle(env: &Env, args: &[&str], edit: impl FnOnce(&mut Value)) -> Bundle {
    env.bundle_with(args, |c| {
        c["process"]["terminal"] = json!(true);
        edit(c)
    })
}

fn sleeper(env: &Env) -> (Bundle, String) {
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("c");
    env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
    env.wait_status(&id, "running");
    (b, id)
}

/// `run -d --console-socket` of `b` as `id`: the pty master, once the container runs.
fn run_detached_tty(env: &Env, b: &Bundle, id: &str) -> Pty {
    let cs = ConsoleSocket::new(env);
    let (pty, sp) = recv_master(
        &cs,
        env.spawn(&[
            "run",
            "-d",
            "--console-socket",
            cs.arg(),
            "--bundle",
            b.path(),
            id,
        ]),
    );
    sp.wait().success();
    env.wait_status(id, "running");
    pty
}

// ---- console socket tests --------------------------------------------------------

#[test]
fn exec_tty_console_socket_foreground() {
    let env = Env::new();
    let (_b, id) = sleeper(&env);
    let cs = ConsoleSocket::new(&env);
    let args = ["exec", "--tty", "--console-socket", cs.arg(), &id, "sh"];
    if is_runc() {
        // runc 1.1 takes a console socket only when it detaches; tong also
        // serves a foreground exec (and waits for the process's status).
        env.rt(&args)
            .failure()
            .stderr_has("cannot use console socket");
        env.rt(&["delete", "--force", &id]).success();
        env.assert_nothing_left(&id);
        return;
    }
    let (mut pty, sp) = recv_master(&cs, env.spawn(&args));
    pty.send("echo hi; exit 3\n");
    pty.expect_line("hi");
    pty.read_to_eof();
    let out = sp.wait();
    assert_eq!(
        out.code,
        3,
        "exec exits with the shell's status: {out:#?}\n{:?}",
        pty.text_from(0)
    );
    assert_eq!(env.status(&id), "running");
    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);
}

#[test]
fn exec_tty_is_the_controlling_terminal_and_stdio() {
    let env = Env::new();
    let (_b, id) = sleeper(&env);
    let cs = ConsoleSocket::new(&env);
    let (mut pty, sp) = recv_master(&cs, env.spawn(&[
        "exec",
        "-d",
        "-t",
        "--console-socket",
        cs.arg(),
        &id,
        "sh",
        "-c",
        "tty; for f in 0 1 2; do readlink /proc/self/fd/$f; done; [ -t 0 ] && echo stdin-is-a-tty; \
         echo via-dev-tty > /dev/tty",
    ]));
    let out = sp.wait();
    out.success();
    pty.read_to_eof();
    let t = pty.text_from(0);
    let lines: Vec<&str> = t
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert!(lines[0].starts_with("/dev/pts/"), "{t:?}");
    for l in &lines[1..4] {
        assert_eq!(*l, lines[0], "stdio is the terminal: {t:?}");
    }
    assert_eq!(lines[4], "stdin-is-a-tty", "{t:?}");
    // /dev/tty opens only with a controlling terminal.
    assert_eq!(lines[5], "via-dev-tty", "{t:?}");
    // Nothing of the runtime's own stdio (files here) reaches the process.
    assert!(!out.stdout.contains("pts"), "{out:#?}");
    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);
}

#[test]
fn exec_detached_tty_console_socket() {
    let env = Env::new();
    let (_b, id) = sleeper(&env);
    let cs = ConsoleSocket::new(&env);
    let pidfile = env.base.join("exec.pid");
    let (mut pty, sp) = recv_master(
        &cs,
        env.spawn(&[
            "exec",
            "-d",
            "-t",
            "--console-socket",
            cs.arg(),
            "--pid-file",
            pidfile.to_str().unwrap(),
            &id,
            "sh",
        ]),
    );
    sp.wait().success();
    let pid: i64 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid_alive(pid), "the shell waits for input");
    pty.send("echo hi; exit 3\n");
    pty.expect_line("hi");
    pty.read_to_eof();
    wait_pid_gone(pid);
    assert_eq!(env.status(&id), "running");
    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);
}

#[test]
fn run_detached_console_socket() {
    let env = Env::new();
    let b = tty_bundle(&env, &["sh"], |_| {});
    let id = env.id("c");
    let mut pty = run_detached_tty(&env, &b, &id);
    pty.send("echo hi; tty; exit 3\n");
    pty.expect_line("hi");
    pty.read_to_eof();
    assert!(
        pty.text_from(0)
            .split(['\r', '\n'])
            .any(|l| l.trim().starts_with("/dev/pts/")),
        "the shell's terminal is a pty of the container's devpts: {:?}",
        pty.text_from(0)
    );
    env.wait_status(&id, "stopped");
    env.rt(&["delete", &id]).success();
    env.assert_nothing_left(&id);
}

/// The pty goes to the process's user before it runs (runc's fixStdioPermissions); its
/// group stays what devpts gave it (gid=5 in the default config).
#[test]
fn the_pty_belongs_to_the_processs_user() {
    let env = Env::new();
    let b = tty_bundle(&env, &["sh"], |c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    });
    let id = env.id("c");
    let mut pty = run_detached_tty(&env, &b, &id);
    pty.send("echo owner=$(stat -L -c %u:%g /proc/self/fd/0); exit\n");
    pty.expect_line("owner=1000:5");
    pty.read_to_eof();
    env.wait_status(&id, "stopped");
    env.rt(&["delete", &id]).success();
    env.assert_nothing_left(&id);
}

/// A terminal with a read-only /dev: /dev/console is made before the remount (bats'
/// "ro /dev mount" runs with a terminal).
#[test]
fn a_terminal_with_a_read_only_dev() {
    let env = Env::new();
    let b = tty_bundle(&env, &["sh"], |c| {
        for m in c["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/dev" {
                m["options"].as_array_mut().unwrap().push(json!("ro"));
            }
        }
    });
    let id = env.id("c");
    let mut pty = run_detached_tty(&env, &b, &id);
    pty.send("grep -c '^tmpfs /dev tmpfs ro,' /proc/mounts; test -c /dev/console && echo console-ok; exit\n");
    pty.expect_line("console-ok");
    pty.read_to_eof();
    assert!(has_line(&pty.text_from(0), "1"), "{:?}", pty.text_from(0));
    env.wait_status(&id, "stopped");
    env.rt(&["delete", &id]).success();
    env.assert_nothing_left(&id);
}

/// Without a terminal, pipes are the user's too; /dev/null is left as it is.
#[test]
fn piped_stdio_belongs_to_the_processs_user() {
    let env = Env::new();
    let out = env.sh(
        "stat -L -c %u /proc/self/fd/1; stat -L -c %u /proc/self/fd/2; stat -L -c %u:%t:%T /proc/self/fd/0",
        |c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000}),
    );
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(&l[..2], ["1000", "1000"], "{out}");
    // The control: stdin is the host's /dev/null (1:3), which keeps its owner. (runc's
    // foreground run relays stdio through pipes of its own, stdin included.)
    if !is_runc() {
        assert_eq!(l[2], "0:1:3", "{out}");
    }
}

#[test]
fn create_console_socket_then_start() {
    // containerd's order: create with the socket, start later.
    let env = Env::new();
    let b = tty_bundle(&env, &["sh"], |_| {});
    let id = env.id("c");
    let cs = ConsoleSocket::new(&env);
    let (mut pty, sp) = recv_master(
        &cs,
        env.spawn(&[
            "create",
            "--console-socket",
            cs.arg(),
            "--bundle",
            b.path(),
            &id,
        ]),
    );
    sp.wait().success();
    assert_eq!(env.status(&id), "created");
    env.rt(&["start", &id]).success();
    pty.send("echo started-$((6*7)); exit\n");
    pty.expect_line("started-42");
    pty.read_to_eof();
    env.wait_status(&id, "stopped");
    env.rt(&["delete", &id]).success();
    env.assert_nothing_left(&id);
}

#[test]
fn console_size_is_honoured() {
    let env = Env::new();
    let b = tty_bundle(&env, &["sh", "-c", "stty size; exit 0"], |c| {
        c["process"]["consoleSize"] = json!({ "height": 25, "width": 81 });
    });
    let id = env.id("c");
    let cs = ConsoleSocket::new(&env);
    let (mut pty, sp) = recv_master(
        &cs,
        env.spawn(&[
            "run",
            "-d",
            "--console-socket",
            cs.arg(),
            "--bundle",
            b.path(),
            &id,
        ]),
    );
    sp.wait().success();
    pty.read_to_eof();
    assert!(
        has_line(&pty.text_from(0), "25 81"),
        "{:?}",
        pty.text_from(0)
    );
    env.wait_status(&id, "stopped");
    env.rt(&["delete", &id]).success();
    env.assert_nothing_left(&id);
}

#[test]
fn exec_process_json_console_size() {
    let env = Env::new();
    let (_b, id) = sleeper(&env);
    let cs = ConsoleSocket::new(&env);
    let pj = env.base.join("process.json");
    let p = json!({
        "terminal": true,
        "consoleSize": { "height": 31, "width": 97 },
        "user": { "uid": 0, "gid": 0 },
        "args": ["sh", "-c", "stty size; exit 0"],
        "env": ["PATH=/bin:/usr/bin", "TERM=xterm"],
        "cwd": "/"
    });
    fs::write(&pj, p.to_string()).unwrap();
    let (mut pty, sp) = recv_master(
        &cs,
        env.spawn(&[
            "exec",
            "-d",
            "--process",
            pj.to_str().unwrap(),
            "--console-socket",
            cs.arg(),
            &id,
        ]),
    );
    sp.wait().success();
    pty.read_to_eof();
    assert!(
        has_line(&pty.text_from(0), "31 97"),
        "{:?}",
        pty.text_from(0)
    );
    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);
}

// ---- a foreground runtime under a real terminal -------------------------------------

#[test]
fn interactive_run_without_console_socket() {
    let env = Env::new();
    let b = tty_bundle(&env, &["sh"], |_| {});
    let id = env.id("c");
    let mut it = Interactive::spawn(&env, &["run", "--bundle", b.path(), &id], 33, 99);
    wait_prompt(&mut it.pty, 0);
    it.pty.send("echo typed-$((40+2))\r");
    it.pty.expect_line("typed-42");
    let m = it.pty.mark();
    it.pty.send("stty size\r");
    it.pty.expect_line_from(m, "33 99");
    it.pty.send("exit 4\r");
    let (code, t) = it.wait();
    assert_eq!(
        code, 4,
        "run exits with the shell's status; transcript:\n{t:?}"
    );
    // Foreground run deletes the container.
    env.rt(&["state", &id])
        .failure()
        .stderr_has("does not exist");
    env.assert_nothing_left(&id);
}

#[test]
fn interactive_run_window_size_changes_reach_the_container() {
    let env = Env::new();
    let b = tty_bundle(&env, &["sh"], |_| {});
    let id = env.id("c");
    let mut it = Interactive::spawn(&env, &["run", "--bundle", b.path(), &id], 33, 99);
    wait_prompt(&mut it.pty, 0);
    let m = it.pty.mark();
    it.pty.send("stty size\r");
    it.pty.expect_line_from(m, "33 99");
    // Resizing the outer terminal sends SIGWINCH to the runtime, which
    // resizes the container's pty. Ask until the new size shows.
    set_size(&it.pty.master, 40, 120);
    let start = Instant::now();
    loop {
        let m = it.pty.mark();
        it.pty.send("stty size\r");
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(500) {
            it.pty.pump(50);
        }
        if has_line(&it.pty.text_from(m), "40 120") {
            break;
        }
        assert!(
            start.elapsed() < STATE_DEADLINE,
            "the new window size never reached the container; transcript:\n{:?}",
            it.pty.text_from(0)
        );
    }
    it.pty.send("exit 0\r");
    let (code, t) = it.wait();
    assert_eq!(code, 0, "{t:?}");
    env.assert_nothing_left(&id);
}

#[test]
fn interactive_exec_tty_without_console_socket() {
    let env = Env::new();
    let (_b, id) = sleeper(&env);
    let mut it = Interactive::spawn(&env, &["exec", "-t", &id, "sh"], 33, 99);
    wait_prompt(&mut it.pty, 0);
    it.pty.send("echo typed-$((40+2))\r");
    it.pty.expect_line("typed-42");
    let m = it.pty.mark();
    it.pty.send("stty size; hostname\r");
    it.pty.expect_line_from(m, "33 99");
    it.pty.send("exit 4\r");
    let (code, t) = it.wait();
    assert_eq!(
        code, 4,
        "exec exits with the shell's status; transcript:\n{t:?}"
    );
    assert_eq!(env.status(&id), "running");
    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);
}
