//! docs/OPERATIONS.md holds only commands that run as written. Every line of its
//! ```sh blocks (continued lines joined) is either run here and its effect checked,
//! or named in [`SKIPPED`] with the reason it cannot run on a loopback setup (root,
//! systemd, dpkg, the journal, a real terminal, a package build). A line that is
//! neither fails the test, so a command added to the guide must be classified.
//!
//! The lines run through `sh -c` in a temporary directory, with the built `posbridge`
//! first on PATH and the stores' configuration named by `POSBRIDGE_CONFIG`, as the
//! guide says. The text is the guide's but for two substitutions: `/tmp/` becomes the
//! temporary directory, and the guide's fixed ports (the simulator's 8480, the
//! metrics endpoint's 9640) become the ones the test's servers were given: they bind
//! port 0, and the port each got is read from its output.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use posbridge::ledger::{AcceptPolicy, Acceptance, AttemptStatus, Change, Ledger, NewRefund};
use posbridge::message::RefundState;
use posbridge::money::{Amount, Currency};
use posbridge::sim::cloud::demo::provider_toml;

/// How long any one thing may take to happen.
const WAIT: Duration = Duration::from_secs(30);

/// The guide's lines that cannot run here, by their command (the line without its
/// trailing comment, matched exactly), and why.
const SKIPPED: &[(&str, &str)] = &[
    // 1. Install
    (
        "packaging/build-deb.sh",
        "builds the Debian package: a release build and cargo-deb, minutes",
    ),
    (
        "ls target/debian/posbridge_*.deb",
        "lists the Debian package that build-deb.sh makes",
    ),
    (
        "sudo dpkg -i posbridge_0.1.0-1_amd64.deb",
        "root and dpkg: installs the Debian package",
    ),
    (
        "sudo apt-get install ./posbridge_0.1.0-1_amd64.deb",
        "root and apt: installs the Debian package",
    ),
    (
        "cargo build --release",
        "a release build (minutes); this test runs the build it belongs to",
    ),
    (
        "sudo adduser --system --group --no-create-home --home /var/lib/posbridge \
         --shell /usr/sbin/nologin posbridge",
        "root: creates the system user posbridge",
    ),
    (
        "sudo adduser posbridge dialout",
        "root and the system user posbridge",
    ),
    (
        "sudo install -m 755 target/release/posbridge /usr/bin/",
        "root and a release build: installs into /usr/bin",
    ),
    (
        "sudo install -m 644 systemd/posbridge.service /usr/lib/systemd/system/",
        "root and systemd: installs the unit",
    ),
    (
        "sudo install -m 644 udev/99-posbridge.rules /lib/udev/rules.d/",
        "root and udev: installs the rules",
    ),
    (
        "sudo install -m 644 packaging/posbridge-modules.conf \
         /usr/lib/modules-load.d/posbridge.conf",
        "root: installs the modules-load.d file",
    ),
    (
        "sudo install -m 644 -D packaging/posbridge.toml /etc/posbridge/posbridge.toml",
        "root: installs the package's configuration in /etc",
    ),
    (
        "sudo install -d -m 750 -g posbridge /etc/posbridge/posbridge.toml.d /etc/posbridge/keys",
        "root and the group posbridge: creates directories in /etc",
    ),
    (
        "sudo install -d -m 700 -o posbridge -g posbridge /var/lib/posbridge",
        "root and the user posbridge: creates the state directory",
    ),
    (
        "sudo modprobe -a cdc_acm usbserial",
        "root: loads kernel modules",
    ),
    (
        "sudo udevadm control --reload && sudo systemctl daemon-reload && sudo systemctl \
         enable posbridge",
        "root, udev and systemd: reloads them and enables the installed unit",
    ),
    (
        "sudo cp /lib/udev/rules.d/99-posbridge.rules /etc/udev/rules.d/",
        "root and the installed udev rules",
    ),
    (
        "sudoedit /etc/udev/rules.d/99-posbridge.rules",
        "root, and a person editing the rules",
    ),
    ("sudo udevadm control --reload", "root and udev"),
    (
        "ls -l /dev/posterminal*",
        "a real terminal, plugged in and named by the udev rules",
    ),
    (
        "ls -lL /dev/posterminal*",
        "a real terminal, plugged in and named by the udev rules",
    ),
    // 2. Configure
    (
        "sudo install -m 600 merchant_private_key.pem antom_public_key.pem /etc/posbridge/keys/",
        "root and the store's real keys",
    ),
    (
        "sudo mkdir -p /etc/systemd/system/posbridge.service.d",
        "root and systemd: a drop-in directory for the unit",
    ),
    (
        "sudo cp /usr/share/doc/posbridge/examples/posbridge-credentials.conf.example \
         /etc/systemd/system/posbridge.service.d/credentials.conf",
        "root and the installed package's example drop-in",
    ),
    ("sudo systemctl daemon-reload", "root and systemd"),
    (
        "sudo install -m 640 -g posbridge 50-store.toml /etc/posbridge/posbridge.toml.d/",
        "root and the group posbridge: the store's drop-in into /etc",
    ),
    (
        "sudo systemd-run --quiet --pipe --wait --collect --property=User=posbridge \
         --property=Group=posbridge --property=SupplementaryGroups=dialout \
         --property=LoadCredential=antom-private-key:/etc/posbridge/keys/merchant_private_key.pem \
         --property=LoadCredential=antom-public-key:/etc/posbridge/keys/antom_public_key.pem \
         posbridge check-config",
        "root and systemd: check-config as the service, with its credentials",
    ),
    (
        "sudo posbridge doctor",
        "root: reads the files of the installed unit's LoadCredential= lines",
    ),
    (
        "sudo -u posbridge posbridge doctor --credentials /etc/posbridge/keys",
        "root, the user posbridge and the installed keys",
    ),
    // 4. Logs and metrics
    (
        "journalctl -u posbridge -f",
        "the journal of the installed service (and -f never ends)",
    ),
    (
        "journalctl -u posbridge --since today | grep REF-1",
        "the journal of the installed service",
    ),
    (
        "systemctl status posbridge",
        "systemd: the installed service's status",
    ),
    // 7. Upgrade
    (
        "sudo dpkg -i posbridge_<new>_amd64.deb </dev/null",
        "root and dpkg: a newer package (<new> stands for its version)",
    ),
    (
        "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y ./posbridge_<new>_amd64.deb",
        "root and apt: a newer package (<new> stands for its version)",
    ),
    ("sudo systemctl stop posbridge", "root and systemd"),
    (
        "sudo cp -a /var/lib/posbridge/ledger.sqlite /var/lib/posbridge/ledger.sqlite.bak",
        "root: the installed service's ledger",
    ),
    // 9. The fleet
    (
        "posbridge fleet box-key --secret-file /etc/posbridge/fleet.secret --box-id store-112 \
         > store-112.key",
        "the receiver host's fleet secret, /etc/posbridge/fleet.secret (0600); the same \
         command on a secret of the test's makes the key of the box whose metrics it reads",
    ),
    (
        "sudo -u posbridge posbridge check-config",
        "root, the user posbridge and the installed configuration and key",
    ),
    (
        "journalctl -u posbridge | grep fleet",
        "the journal of the installed service",
    ),
];

// ---------------------------------------------------------------------------------
// Reading the guide

/// One command of the guide: a line of a ```sh block, continued lines joined.
#[derive(Debug)]
struct DocLine {
    /// Its first line in the file.
    line: usize,
    /// As written (continued lines joined with a space).
    text: String,
    /// Without its trailing comment: what is matched.
    command: String,
    /// Run by this test.
    ran: bool,
}

/// The part of a shell line before its comment: a `#` outside quotes, at the start or
/// after a space.
fn without_comment(text: &str) -> &str {
    let mut quote = None;
    let mut previous = ' ';
    for (i, c) in text.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && previous.is_whitespace() => return text[..i].trim_end(),
            None => {}
        }
        previous = c;
    }
    text.trim_end()
}

/// Every command in the ```sh blocks of `doc`; blank lines and comment lines are not
/// commands.
fn shell_lines(doc: &str) -> Vec<DocLine> {
    let mut found = Vec::new();
    let mut block: Option<bool> = None;
    let mut pending: Option<(usize, String)> = None;
    for (n, raw) in doc.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with("```") {
            block = match block {
                None => Some(line == "```sh"),
                Some(_) => None,
            };
            continue;
        }
        if block != Some(true) {
            continue;
        }
        let (start, text) = match pending.take() {
            Some((start, head)) => (start, format!("{head} {line}")),
            None => (n + 1, line.to_owned()),
        };
        if let Some(head) = text.strip_suffix('\\') {
            pending = Some((start, head.trim_end().to_owned()));
            continue;
        }
        let command = without_comment(&text).to_owned();
        if command.is_empty() {
            continue;
        }
        found.push(DocLine {
            line: start,
            text,
            command,
            ran: false,
        });
    }
    found
}

/// The guide's commands, and which of them ran.
struct Guide {
    lines: Vec<DocLine>,
}

impl Guide {
    fn read() -> Guide {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/OPERATIONS.md");
        let doc = std::fs::read_to_string(path).expect("docs/OPERATIONS.md");
        Guide {
            lines: shell_lines(&doc),
        }
    }

    /// The next line not yet run whose command is `command`, marked as run.
    fn take(&mut self, command: &str) -> (usize, String) {
        match self
            .lines
            .iter_mut()
            .find(|l| !l.ran && l.command == command)
        {
            Some(l) => {
                l.ran = true;
                (l.line, l.text.clone())
            }
            None => panic!(
                "docs/OPERATIONS.md has no (further) line `{command}`; its commands not run \
                 yet:\n{}",
                self.left().join("\n")
            ),
        }
    }

    fn left(&self) -> Vec<String> {
        self.lines
            .iter()
            .filter(|l| !l.ran)
            .map(|l| format!("  {}: {}", l.line, l.command))
            .collect()
    }
}

// ---------------------------------------------------------------------------------
// Running it

/// What a command did.
#[derive(Debug)]
struct Ran {
    what: String,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn context(&self) -> String {
        format!(
            "{}\n--- exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.what, self.code, self.stdout, self.stderr
        )
    }

    /// Asserts the exit status.
    fn exits(&self, code: i32) -> &Ran {
        assert_eq!(self.code, code, "exit status of {}", self.context());
        self
    }

    /// Asserts that standard output says `text`.
    fn says(&self, text: &str) -> &Ran {
        assert!(
            self.stdout.contains(text),
            "expected {text:?} in the output of {}",
            self.context()
        );
        self
    }

    /// Asserts that standard output says at least one of `texts`.
    fn says_one_of(&self, texts: &[&str]) -> &Ran {
        assert!(
            texts.iter().any(|text| self.stdout.contains(text)),
            "expected one of {texts:?} in the output of {}",
            self.context()
        );
        self
    }

    /// Asserts that standard output does not say `text`.
    fn never_says(&self, text: &str) -> &Ran {
        assert!(
            !self.stdout.contains(text),
            "did not expect {text:?} in the output of {}",
            self.context()
        );
        self
    }
}

/// A command running in the background, its output going to files.
struct Background {
    what: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Background {
    fn output(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!("{}{}", read(&self.stdout), read(&self.stderr))
    }

    /// Waits until its output satisfies `found`, which returns what was looked for.
    fn wait_for<T>(&mut self, what: &str, found: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            let output = self.output();
            if let Some(t) = found(&output) {
                return t;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} ended ({status}) before {what}:\n{output}", self.what);
            }
            assert!(
                Instant::now() < deadline,
                "{}: not within {WAIT:?}: {what}\n{output}",
                self.what
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM, as `kill %1` does, and waits for it to end.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop on SIGTERM:\n{}",
                self.what,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test's machine: a directory standing for /tmp and the working directory, the
/// ports its servers got, and the store whose configuration `POSBRIDGE_CONFIG` names.
struct Site {
    dir: tempfile::TempDir,
    path: std::ffi::OsString,
    ports: Vec<(u16, u16)>,
    store: Option<PathBuf>,
    spawned: usize,
}

impl Site {
    fn new() -> Site {
        let bin = Path::new(env!("CARGO_BIN_EXE_posbridge"))
            .parent()
            .unwrap()
            .to_path_buf();
        let mut dirs = vec![bin];
        dirs.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        Site {
            dir: tempfile::tempdir().unwrap(),
            path: std::env::join_paths(dirs).unwrap(),
            ports: Vec::new(),
            store: None,
            spawned: 0,
        }
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The guide's text as it runs here: `/tmp/` is the test's directory, and each
    /// of the guide's ports the one the test's server got.
    fn as_run(&self, text: &str) -> String {
        let mut text = text.replace("/tmp/", &format!("{}/", self.dir().display()));
        for (documented, given) in &self.ports {
            text = text.replace(
                &format!("127.0.0.1:{documented}"),
                &format!("127.0.0.1:{given}"),
            );
        }
        text
    }

    fn shell(&self, script: &str) -> Command {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(script)
            .current_dir(self.dir())
            .env("PATH", &self.path)
            .env("TMPDIR", self.dir())
            .env_remove("RUST_LOG")
            .env_remove("POSBRIDGE_CONFIG")
            .stdin(Stdio::null());
        if let Some(store) = &self.store {
            command.env("POSBRIDGE_CONFIG", store);
        }
        command
    }

    /// Runs the guide's line `command` (taken from the guide, so it must be there).
    fn run(&self, guide: &mut Guide, command: &str) -> Ran {
        let (line, text) = guide.take(command);
        self.run_text(&format!("docs/OPERATIONS.md:{line}: {text}"), &text)
    }

    /// Runs the guide's line `command` once more, to see what an earlier one did.
    fn again(&self, guide: &Guide, command: &str) -> Ran {
        let line = guide
            .lines
            .iter()
            .find(|l| l.command == command)
            .unwrap_or_else(|| panic!("docs/OPERATIONS.md has no line `{command}`"));
        self.run_text(
            &format!("docs/OPERATIONS.md:{} (again): {}", line.line, line.text),
            &line.text,
        )
    }

    fn run_text(&self, what: &str, text: &str) -> Ran {
        let script = self.as_run(text);
        let out = self.shell(&script).output().unwrap();
        Ran {
            what: format!("{what}\n  ran as: {script}"),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Starts the guide's background line `command` (ending in `&`); the test owns
    /// the process (`exec` makes the shell become it) and stops it.
    fn start(&mut self, guide: &mut Guide, command: &str) -> Background {
        let (line, text) = guide.take(command);
        let foreground = without_comment(&text)
            .strip_suffix('&')
            .unwrap_or_else(|| panic!("line {line} is not a background command: {text}"));
        let script = format!("exec {}", self.as_run(foreground.trim_end()));
        self.spawn(
            format!("docs/OPERATIONS.md:{line}: {text}\n  ran as: {script}"),
            self.shell(&script),
        )
    }

    fn spawn(&mut self, what: String, mut command: Command) -> Background {
        self.spawned += 1;
        let stdout = self.dir().join(format!("background-{}.out", self.spawned));
        let stderr = self.dir().join(format!("background-{}.err", self.spawned));
        let child = command
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Background {
            what,
            child,
            stdout,
            stderr,
        }
    }

    /// Writes a store: its configuration (a terminal, the ledger beside it, the
    /// provider's section) and no ledger yet.
    fn store(&self, name: &str, extra: &str, provider: &str) -> Store {
        let dir = self.dir().join(name);
        std::fs::create_dir(&dir).unwrap();
        let ledger = dir.join("ledger.sqlite");
        let config = dir.join("posbridge.toml");
        let text = format!(
            "[ledger]\npath = \"{}\"\n\n\
             [[terminal]]\nname = \"front\"\ndevice = \"{}\"\n\n\
             {extra}{provider}",
            ledger.display(),
            dir.join("posterminal").display()
        );
        std::fs::write(&config, text).unwrap();
        Store { config, ledger }
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir().join(name), text).unwrap();
    }
}

/// A store's configuration and ledger.
struct Store {
    config: PathBuf,
    ledger: PathBuf,
}

impl Store {
    /// Replaces the ledger with a new one holding what `fill` records.
    fn fresh_ledger(&self, fill: impl FnOnce(&mut Ledger)) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.ledger.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
        let mut ledger = Ledger::open(&self.ledger).unwrap();
        fill(&mut ledger);
    }

    fn ledger(&self) -> Ledger {
        Ledger::open(&self.ledger).unwrap()
    }
}

// ---------------------------------------------------------------------------------
// Ledgers as a day at a store leaves them

/// Milliseconds of an RFC 3339 time.
fn at(time: &str) -> i64 {
    time.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

fn money(value: i64, currency: &str) -> Amount {
    Amount::new(value, Currency::parse(currency).unwrap()).unwrap()
}

/// A refund as the bridge records it from a terminal.
struct Recorded<'a> {
    id: &'a str,
    payment: &'a str,
    amount: Amount,
    provider: &'a str,
    request_id: &'a str,
    accepted: &'a str,
}

impl Recorded<'_> {
    fn accept(&self, ledger: &mut Ledger) -> i64 {
        let new = NewRefund {
            terminal_id: "front".into(),
            original_merchant_refund_id: self.id.into(),
            payment_id: self.payment.into(),
            amount: Some(self.amount),
            memo: None,
        };
        let policy = AcceptPolicy {
            provider: self.provider.into(),
            queued: false,
            refund_request_id: self.request_id.into(),
            daily_limit: None,
        };
        match ledger.accept(&new, &policy, at(self.accepted)).unwrap() {
            Acceptance::Recorded { refund, .. } => refund.id,
            other => panic!("{other:?}"),
        }
    }

    /// Records it and what the provider's answer made of it, a second later.
    fn ended(
        &self,
        ledger: &mut Ledger,
        state: RefundState,
        refund_id: Option<&str>,
        result: (&str, &str),
    ) -> i64 {
        let id = self.accept(ledger);
        let attempt = ledger.get(id).unwrap().attempt_id;
        let change = Change {
            state: Some(state),
            attempt: Some(AttemptStatus::Done),
            next_action_ms: Some(None),
            provider_refund_id: refund_id.map(str::to_owned),
            result: Some((result.0.into(), result.1.into())),
            cause: format!("provider: {}", result.1),
            ..Change::default()
        };
        ledger
            .apply(id, attempt, &change, at(self.accepted) + 1000)
            .unwrap();
        id
    }
}

const LOST: (&str, &str) = (
    "OUTCOME_UNKNOWN",
    "the connection dropped after the request was sent",
);
const DONE: (&str, &str) = ("SUCCESS", "Success.");

/// Section 5's store: REF-123, whose answer was lost, and an older refund.
fn needs_a_person(ledger: &mut Ledger) {
    Recorded {
        id: "REF-100",
        payment: "PAY-100",
        amount: money(500, "USD"),
        provider: "antom",
        request_id: "PB-20261015-0100",
        accepted: "2026-10-15T14:00:00Z",
    }
    .ended(ledger, RefundState::Succeeded, Some("SIMREF-100"), DONE);
    Recorded {
        id: "REF-123",
        payment: "PAY-123",
        amount: money(1250, "USD"),
        provider: "antom",
        request_id: "PB-20261124-0123",
        accepted: "2026-11-24T15:00:00Z",
    }
    .ended(ledger, RefundState::NeedsAttention, None, LOST);
}

/// Antom's report for 30 November, in the documented layout (a header of names, a
/// row per transaction, `<END>`; amounts in main units).
const ANTOM_REPORT: &str = "\
customerId,PSP,ARN,referenceMerchantId,referenceStoreId,transactionId,transactionRequestId,referenceTransactionId,originalTransactionRequestId,transactionType,transactionStatus,transactionTime,transactionAmountValue,transactionAmountCurrency
2188120000000001,Antom,,,,20261130194010890100111670209000201,pay-20261130-0201,,,PAYMENT,SUCCESS,2026-11-30T10:40:00+08:00,25.00,USD
2188120000000001,Antom,,,,20261130194010890100111670209000201,PB-20261130-0201,,pay-20261130-0201,REFUND,SUCCESS,2026-11-30T11:02:10+08:00,12.50,USD
2188120000000001,Antom,,,,20261130194010890100111670209000202,pay-20261130-0202,,,PAYMENT,SUCCESS,2026-11-30T12:10:00+08:00,8.00,USD
2188120000000001,Antom,,,,20261130194010890100111670209000202,PB-20261130-0202,,pay-20261130-0202,REFUND,SUCCESS,2026-11-30T12:30:01+08:00,8.00,USD
<END>
";

/// A store whose 30 November the report covers: a refund whose answer was lost and
/// which the report shows made (REF-201), one the ledger knows succeeded (REF-202),
/// and one whose answer was lost and which the report does not list (REF-203).
fn antom_day(ledger: &mut Ledger) {
    Recorded {
        id: "REF-201",
        payment: "20261130194010890100111670209000201",
        amount: money(1250, "USD"),
        provider: "antom",
        request_id: "PB-20261130-0201",
        accepted: "2026-11-30T03:02:00Z",
    }
    .ended(ledger, RefundState::NeedsAttention, None, LOST);
    Recorded {
        id: "REF-202",
        payment: "20261130194010890100111670209000202",
        amount: money(800, "USD"),
        provider: "antom",
        request_id: "PB-20261130-0202",
        accepted: "2026-11-30T04:30:00Z",
    }
    .ended(
        ledger,
        RefundState::Succeeded,
        Some("20261130194010890100111670209000902"),
        DONE,
    );
    Recorded {
        id: "REF-203",
        payment: "20261130194010890100111670209000203",
        amount: money(300, "USD"),
        provider: "antom",
        request_id: "PB-20261130-0203",
        accepted: "2026-11-30T06:00:00Z",
    }
    .ended(ledger, RefundState::NeedsAttention, None, LOST);
}

/// An OTT Pay export: refund ids, payments, cents, status, Toronto time; no currency.
const OTTPAY_REPORT: &str = "\
refundId,oriPaymentId,refundAmount,refundStatus,tradeTime
OTT-RF-301,OTT-PAY-301,2500,success,2026-11-30 10:05:00
OTT-RF-302,OTT-PAY-302,1000,success,2026-11-30 10:10:00
";

/// An OTT Pay store: a refund the provider left in `init` (PROVIDER_PENDING) and one
/// that succeeded, both in Canadian dollars.
fn ottpay_day(ledger: &mut Ledger) {
    Recorded {
        id: "REF-301",
        payment: "OTT-PAY-301",
        amount: money(2500, "CAD"),
        provider: "ottpay",
        request_id: "PB-20261130-0301",
        accepted: "2026-11-30T15:04:00Z",
    }
    .ended(
        ledger,
        RefundState::ProviderPending,
        Some("OTT-RF-301"),
        ("init", "the provider finishes it later"),
    );
    Recorded {
        id: "REF-302",
        payment: "OTT-PAY-302",
        amount: money(1000, "CAD"),
        provider: "ottpay",
        request_id: "PB-20261130-0302",
        accepted: "2026-11-30T15:09:00Z",
    }
    .ended(ledger, RefundState::Succeeded, Some("OTT-RF-302"), DONE);
}

/// A PaymentOptions export whose refund id and amount columns are named otherwise,
/// amounts in main units.
const PAYMENTOPTIONS_REPORT: &str = "\
Refund ID,transactionId,Amount,currency,status,timestamp
PO-RF-401,PO-TX-401,9.00,USD,success,2026-11-30T12:00:03Z
PO-RF-402,PO-TX-402,5.00,USD,success,2026-11-30T12:30:02Z
";

/// A PaymentOptions store: a refund whose answer was lost, and one that succeeded.
fn paymentoptions_day(ledger: &mut Ledger) {
    Recorded {
        id: "REF-401",
        payment: "PO-TX-401",
        amount: money(900, "USD"),
        provider: "paymentoptions",
        request_id: "PB-20261130-0401",
        accepted: "2026-11-30T12:00:00Z",
    }
    .ended(ledger, RefundState::NeedsAttention, None, LOST);
    Recorded {
        id: "REF-402",
        payment: "PO-TX-402",
        amount: money(500, "USD"),
        provider: "paymentoptions",
        request_id: "PB-20261130-0402",
        accepted: "2026-11-30T12:30:00Z",
    }
    .ended(ledger, RefundState::Succeeded, Some("PO-RF-402"), DONE);
}

fn state_of(store: &Store, refund: &str) -> RefundState {
    store.ledger().lookup(refund).unwrap().state
}

fn last_cause(store: &Store, refund: &str) -> String {
    let ledger = store.ledger();
    let id = ledger.lookup(refund).unwrap().id;
    let history = ledger.history(id).unwrap();
    history.transitions.last().unwrap().cause.clone()
}

/// The number after `marker` in `text`, up to the first character that is not a
/// digit.
fn port_after(text: &str, marker: &str) -> Option<u16> {
    let rest = &text[text.find(marker)? + marker.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

// ---------------------------------------------------------------------------------
// The guide, run

#[test]
fn every_command_in_operations_runs_as_written_or_says_why_not() {
    let mut guide = Guide::read();
    let mut site = Site::new();

    // Every skip names a line the guide has; those lines are not run.
    let mut stale = Vec::new();
    for (command, _why) in SKIPPED {
        let mut matched = false;
        for line in guide.lines.iter_mut().filter(|l| l.command == *command) {
            line.ran = true;
            matched = true;
        }
        if !matched {
            stale.push(*command);
        }
    }
    assert!(
        stale.is_empty(),
        "SKIPPED names lines docs/OPERATIONS.md no longer has:\n{}",
        stale.join("\n")
    );

    field_tech_loopback(&mut site, &mut guide);
    let sim = simulated_cloud(&mut site, &mut guide);
    refunds_that_need_a_person(&mut site, &mut guide);
    reconciling(&mut site, &mut guide);
    doctor_as_json(&mut site, &mut guide);
    fleet_metrics(&mut site, &mut guide);
    drop(sim);

    let left = guide.left();
    assert!(
        left.is_empty(),
        "docs/OPERATIONS.md lines neither run by this test nor in SKIPPED (run them \
         here, or skip them with a reason):\n{}",
        left.join("\n")
    );
}

/// Section 8: the demo, the link-test responder on a virtual line, a terminal on it.
fn field_tech_loopback(site: &mut Site, guide: &mut Guide) {
    site.run(guide, "posbridge demo")
        .exits(0)
        .says("It ended SUCCEEDED")
        .says("REF-3 ended SUCCEEDED")
        .says("The simulated cloud executed 3 refunds");

    let link = site.dir().join("posterminal");
    let mut responder = site.start(guide, "posbridge loopback --link /tmp/posterminal &");
    responder.wait_for("the virtual line is ready", |out| {
        (out.contains("virtual serial line ready") && link.exists()).then_some(())
    });
    let term = site.run(
        guide,
        "posbridge term /tmp/posterminal --trace --refund PAY-1 --amount 1250 --currency USD \
         --id REF-1",
    );
    // The responder never makes a refund: FAILED, LINK_TEST, as the guide says.
    term.exits(1)
        .says("== connected to the bridge")
        .says("REFUND_UPDATE REF-1 FAILED")
        .says("LINK_TEST");
    // --trace: every frame in hex with its meaning, on standard error.
    assert!(
        term.stderr.contains("HELLO seq=1") && term.stderr.contains("REFUND_UPDATE seq="),
        "{}",
        term.context()
    );
    responder.wait_for("the responder saw the refund", |out| {
        out.contains("<- REFUND").then_some(())
    });
    let status = responder.terminate();
    assert!(status.success(), "the responder on SIGTERM: {status}");
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "the responder removes {} when it stops",
        link.display()
    );
}

/// Section 8: the simulator, a refund against it, an outage. The simulator keeps
/// running for the rest of the test (the stores' provider is this simulator).
fn simulated_cloud(site: &mut Site, guide: &mut Guide) -> Background {
    site.ports.push((8480, 0));
    let mut sim = site.start(guide, "posbridge sim-cloud --listen 127.0.0.1:8480 &");
    let port = sim.wait_for("the simulator listens", |out| {
        port_after(out, "cloud simulator on http://127.0.0.1:")
    });
    site.ports = vec![(8480, port)];
    // The hint it prints names the port it got, not the 0 it was given.
    sim.wait_for("the simulator's hint names its port", |out| {
        out.contains(&format!(
            "client config: posbridge sim-cloud --listen 127.0.0.1:{port} --print-config"
        ))
        .then_some(())
    });

    site.run(
        guide,
        "posbridge sim-cloud --listen 127.0.0.1:8480 --print-config antom > /tmp/provider.toml",
    )
    .exits(0);
    let config = std::fs::read_to_string(site.dir().join("provider.toml")).unwrap();
    assert!(
        config.contains(&format!("base_url = \"http://127.0.0.1:{port}\"")),
        "{config}"
    );

    let refund = "posbridge refund --config /tmp/provider.toml --payment-id PAY-SYNC-1 \
                  --amount 100 --currency USD";
    site.run(guide, refund)
        .exits(0)
        .says("payment PAY-SYNC-1 1.00 USD")
        .says("SUCCEEDED refund_id=");
    site.run(
        guide,
        r#"curl -X POST 127.0.0.1:8480/_sim/down -d '{"for_ms":10000}'"#,
    )
    .exits(0)
    .says(r#"{"ok":true}"#);
    site.run(guide, refund)
        .exits(6)
        .says("RETRY_SAME_REQUEST")
        // Refused at connect, or answered 503 in the moment before the listener closes.
        .says_one_of(&["nothing sent", "not processed"])
        .never_says("SUCCEEDED");
    sim
}

/// Section 5: the queue, a refund's history, settling it either way, a retry, the
/// export, on a store named by POSBRIDGE_CONFIG.
fn refunds_that_need_a_person(site: &mut Site, guide: &mut Guide) {
    let store = site.store(
        "store",
        "",
        &provider_toml("antom", &sim_url(site)).unwrap(),
    );
    site.store = Some(store.config.clone());
    store.fresh_ledger(needs_a_person);

    site.run(guide, "posbridge queue")
        .exits(0)
        .says("REF-123")
        .says("NEEDS_ATTENTION")
        .says(&format!("needs a person: {}", LOST.1))
        .never_says("REF-100");
    site.run(guide, "posbridge show REF-123")
        .exits(0)
        .says("Refund #2 — NEEDS_ATTENTION")
        .says("refundRequestId     PB-20261124-0123")
        .says("Attempts:")
        .says("History:")
        .says("ACCEPTED → NEEDS_ATTENTION");

    site.run(
        guide,
        r#"posbridge resolve REF-123 --succeeded --note "portal shows refund 2026112400001, checked by J.""#,
    )
    .exits(0)
    .says("Refund #2 (REF-123) is now SUCCEEDED.");
    site.again(guide, "posbridge queue")
        .exits(0)
        .says("No unfinished refunds.")
        .says("SUCCEEDED 2");
    site.again(guide, "posbridge show REF-123")
        .exits(0)
        .says("NEEDS_ATTENTION → SUCCEEDED")
        .says("resolved as SUCCEEDED: portal shows refund 2026112400001, checked by J.");

    // The other answer, on the same ledger as before it.
    store.fresh_ledger(needs_a_person);
    site.run(
        guide,
        r#"posbridge resolve REF-123 --failed --note "not in the portal; cashier to redo it""#,
    )
    .exits(0)
    .says("Refund #2 (REF-123) is now FAILED.");
    assert!(
        last_cause(&store, "REF-123").contains("not in the portal; cashier to redo it"),
        "{}",
        last_cause(&store, "REF-123")
    );
    site.again(guide, "posbridge queue")
        .exits(0)
        .says("No unfinished refunds.");

    let retried = site.run(guide, "posbridge retry REF-123");
    retried
        .exits(0)
        .says("Refund #2 (REF-123) is ACCEPTED and due now, refundRequestId")
        .never_says("PB-20261124-0123");
    let now = store.ledger().lookup("REF-123").unwrap();
    assert_eq!(now.state, RefundState::Accepted);
    assert_ne!(now.refund_request_id, "PB-20261124-0123");
    site.again(guide, "posbridge queue")
        .exits(0)
        .says("ACCEPTED")
        .says("due now");

    let export = site.run(guide, "posbridge export --since 2026-11-01");
    export.exits(0);
    let rows: Vec<&str> = export.stdout.lines().collect();
    assert!(
        rows[0].starts_with("box_id,ledger_id,terminal_id,original_merchant_refund_id"),
        "{}",
        export.context()
    );
    assert_eq!(rows.len(), 2, "REF-123 only: {}", export.context());
    assert!(
        rows[1].contains(",REF-123,PAY-123,1250,USD,") && rows[1].contains(",ACCEPTED,"),
        "{}",
        export.context()
    );
    site.store = None;
}

/// Section 5a: each report the guide shows, against a store it covers.
fn reconciling(site: &mut Site, guide: &mut Guide) {
    let url = sim_url(site);

    let antom = site.store("antom", "", &provider_toml("antom", &url).unwrap());
    antom.fresh_ledger(antom_day);
    site.store = Some(antom.config.clone());
    site.write("transaction_details_20261130.csv", ANTOM_REPORT);
    site.run(
        guide,
        "posbridge reconcile --report transaction_details_20261130.csv",
    )
    .exits(1)
    .says("1 settled by the report:")
    .says("REF-201 (NEEDS_ATTENTION)")
    .says("[--apply records it]")
    .says("1 confirmed:")
    .says("The ledger and the report disagree.")
    // Absence proves nothing without --through.
    .never_says("REF-203");
    assert_eq!(state_of(&antom, "REF-201"), RefundState::NeedsAttention);

    site.run(
        guide,
        "posbridge reconcile --report transaction_details_20261130.csv --from 2026-11-30 \
         --through 2026-11-30 --apply",
    )
    .exits(0)
    .says("2 settled by the report:")
    .says("REF-203 (NEEDS_ATTENTION)")
    .says("no money moved [applied]")
    .says("The ledger and the report agree.");
    assert_eq!(state_of(&antom, "REF-201"), RefundState::Succeeded);
    assert_eq!(state_of(&antom, "REF-203"), RefundState::Failed);
    assert_eq!(state_of(&antom, "REF-202"), RefundState::Succeeded);
    // The note names the report, as `posbridge show` shows it.
    assert!(
        last_cause(&antom, "REF-203").contains("transaction_details_20261130.csv"),
        "{}",
        last_cause(&antom, "REF-203")
    );

    let ottpay = site.store("ottpay", "", &provider_toml("ottpay", &url).unwrap());
    ottpay.fresh_ledger(ottpay_day);
    site.store = Some(ottpay.config.clone());
    site.write("ottpay-refunds.csv", OTTPAY_REPORT);
    site.run(
        guide,
        "posbridge reconcile --report ottpay-refunds.csv --provider ottpay --currency CAD",
    )
    .exits(1)
    .says("1 settled by the report:")
    .says("REF-301 (PROVIDER_PENDING)")
    .says("1 confirmed:")
    .never_says("mismatch");
    assert_eq!(state_of(&ottpay, "REF-301"), RefundState::ProviderPending);

    let options = site.store(
        "paymentoptions",
        "",
        &provider_toml("paymentoptions", &url).unwrap(),
    );
    options.fresh_ledger(paymentoptions_day);
    site.store = Some(options.config.clone());
    site.write("export.csv", PAYMENTOPTIONS_REPORT);
    site.run(
        guide,
        r#"posbridge reconcile --report export.csv --provider paymentoptions --column refund_id="Refund ID" --column amount="Amount" --amount-unit major"#,
    )
    .exits(1)
    .says("1 settled by the report:")
    .says("REF-401 (NEEDS_ATTENTION)")
    .says("1 confirmed:")
    .never_says("mismatch");
    site.store = None;
}

/// Section 2: doctor's JSON through the guide's jq filter, on a store of the test's.
fn doctor_as_json(site: &mut Site, guide: &mut Guide) {
    let store = site.store(
        "doctor",
        "",
        &provider_toml("antom", &sim_url(site)).unwrap(),
    );
    site.store = Some(store.config.clone());
    let ran = site.run(
        guide,
        r#"posbridge doctor --json | jq '.checks[] | select(.verdict != "pass")'"#,
    );
    ran.exits(0);
    // jq prints the checks that did not pass, one object each.
    let mut names = Vec::new();
    for check in serde_json::Deserializer::from_str(&ran.stdout).into_iter::<serde_json::Value>() {
        let check = check.unwrap_or_else(|e| panic!("{e}: {}", ran.context()));
        assert_ne!(check["verdict"], "pass", "{}", ran.context());
        assert!(check["fix"].is_string(), "{}", ran.context());
        names.push(check["name"].as_str().unwrap_or_default().to_owned());
    }
    // No daemon holds this store's ledger, and its terminal is not plugged in; its
    // configuration is sound.
    assert!(names.iter().any(|n| n == "daemon"), "{}", ran.context());
    assert!(
        names.iter().any(|n| n == "terminal front"),
        "{}",
        ran.context()
    );
    assert!(
        !names.iter().any(|n| n == "configuration"),
        "{}",
        ran.context()
    );
    site.store = None;
}

/// Section 9: a box shipping its ledger to a fleet receiver (here, one that is not
/// there) shows it in its metrics.
fn fleet_metrics(site: &mut Site, guide: &mut Guide) {
    let secret = site.dir().join("fleet.secret");
    std::fs::write(&secret, "9f2c4e6a8b0d1f3e5a7c9e1b3d5f7a9c\n").unwrap();
    let store = site.store(
        "box",
        "[metrics]\nlisten = \"127.0.0.1:0\"\n\n[fleet]\nurl = \"http://127.0.0.1:9\"\n\
         box_id = \"store-112\"\nsecret_file = \"fleet.key\"\n\n",
        &provider_toml("antom", &sim_url(site)).unwrap(),
    );
    // The key, as the receiver's host makes it (the guide's line, on this secret).
    let key = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(["fleet", "box-key", "--secret-file"])
        .arg(&secret)
        .args(["--box-id", "store-112"])
        .output()
        .unwrap();
    assert!(key.status.success(), "{key:?}");
    let key_file = store.config.with_file_name("fleet.key");
    std::fs::write(&key_file, &key.stdout).unwrap();
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();

    // The service the guide's line runs beside.
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_posbridge"));
    daemon
        .args(["run", "--config"])
        .arg(&store.config)
        .env("RUST_LOG", "info")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null());
    let mut daemon = site.spawn("posbridge run (the box's service)".into(), daemon);
    let port = daemon.wait_for("the metrics endpoint listens", |out| {
        port_after(out, "metrics on /metrics listen=127.0.0.1:")
    });
    daemon.wait_for("the shipper starts", |out| {
        out.contains("shipping the ledger to the fleet receiver")
            .then_some(())
    });
    site.ports.push((9640, port));

    let ran = site.run(
        guide,
        "curl -s 127.0.0.1:9640/metrics | grep posbridge_fleet_",
    );
    ran.exits(0);
    for metric in [
        "posbridge_fleet_lag_seconds ",
        "posbridge_fleet_pending_transitions ",
        "posbridge_fleet_confirmed_sequence ",
    ] {
        ran.says(metric);
    }
    assert!(
        ran.stdout.lines().all(|l| l.contains("posbridge_fleet_")),
        "{}",
        ran.context()
    );
    let status = daemon.terminate();
    assert!(status.success(), "the service on SIGTERM: {status}");
}

/// The simulator's address, as the test's stores name it.
fn sim_url(site: &Site) -> String {
    let (_, port) = site
        .ports
        .iter()
        .find(|(documented, _)| *documented == 8480)
        .expect("the simulator runs");
    format!("http://127.0.0.1:{port}")
}

// ---------------------------------------------------------------------------------
// The reader, and the environment variable the guide relies on

#[test]
fn the_reader_takes_sh_blocks_line_by_line() {
    let doc = concat!(
        "```sh\n",
        "posbridge queue   # a comment\n",
        "# only a comment\n",
        "\n",
        "posbridge reconcile --report a \\\n",
        "    --apply\n",
        "```\n",
        "```toml\n",
        "kind = \"antom\"\n",
        "```\n",
        "posbridge outside\n",
        "```sh\n",
        "curl -d '{\"a\":\"#1\"}' x # why\n",
        "```\n",
    );
    let lines = shell_lines(doc);
    let commands: Vec<(usize, &str)> = lines.iter().map(|l| (l.line, l.command.as_str())).collect();
    assert_eq!(
        commands,
        [
            (2, "posbridge queue"),
            (5, "posbridge reconcile --report a --apply"),
            (13, r##"curl -d '{"a":"#1"}' x"##),
        ]
    );
    assert_eq!(lines[0].text, "posbridge queue   # a comment");
    assert_eq!(without_comment("ls /dev/x*  # a#b"), "ls /dev/x*");
    assert_eq!(without_comment("echo a#b"), "echo a#b");
}

#[test]
fn posbridge_config_names_the_configuration_and_config_wins() {
    let site = Site::new();
    let store = site.store(
        "store",
        "",
        &provider_toml("antom", "http://127.0.0.1:9").unwrap(),
    );
    store.fresh_ledger(needs_a_person);
    let queue = |env: Option<&Path>, args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_posbridge"));
        command
            .arg("queue")
            .args(args)
            .env_remove("POSBRIDGE_CONFIG");
        if let Some(env) = env {
            command.env("POSBRIDGE_CONFIG", env);
        }
        command.output().unwrap()
    };
    let missing = site.dir().join("missing.toml");
    let config = store.config.to_str().unwrap();

    let by_env = queue(Some(&store.config), &[]);
    assert!(by_env.status.success(), "{by_env:?}");
    assert!(String::from_utf8_lossy(&by_env.stdout).contains("REF-123"));

    let flag_wins = queue(Some(&missing), &["--config", config]);
    assert!(flag_wins.status.success(), "{flag_wins:?}");

    let wrong_env = queue(Some(&missing), &[]);
    assert!(!wrong_env.status.success());
    assert!(
        String::from_utf8_lossy(&wrong_env.stderr).contains("missing.toml"),
        "{wrong_env:?}"
    );
}
