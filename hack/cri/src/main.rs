//! cri-e2e: what a kubelet does, through containerd's CRI API (see hack/e2e/cri.sh).
//!
//! `cri-e2e --endpoint SOCK --handler NAME --image REF --pause-image REF [--cgroup-parent P]
//! [--workdir DIR] [--subnet CIDR] SCENARIO` runs one scenario (`cri-e2e list` names them),
//! prints each thing it checks (`ok: ...`), and exits 1 on the first failed check, after it
//! has stopped and removed every pod it made.
//!
//! `cri-e2e ... --handlers tong,runc,crun [--runs N] [--out FILE] bench` times pod starts and
//! teardowns per handler instead (src/bench.rs).
mod bench;
mod ctx;
mod host;
mod scenarios;
mod stream;

use std::path::PathBuf;
use std::process::ExitCode;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};
use tower::service_fn;

/// What every fallible step returns: the error is the message the tool prints.
pub type R<T> = Result<T, String>;

/// The command line.
#[derive(Clone, Debug)]
pub struct Opts {
    pub endpoint: PathBuf,
    /// The CRI runtime handler (containerd's `runtimes.<name>`) the pods run with.
    pub handler: String,
    pub image: String,
    pub pause_image: String,
    /// cgroupfs: an absolute path, each pod gets `<parent>/<pod>`. systemd: a slice
    /// (`x.slice`), each pod gets the child slice `x-<pod>.slice`. Empty: containerd's
    /// default (no parent).
    pub cgroup_parent: String,
    /// Host directories the scenarios make (logs, bind mount sources).
    pub workdir: PathBuf,
    /// The CNI network's subnet (`10.88.X.0/24`) the pod IPs must be in.
    pub subnet: Option<String>,
    pub scenario: String,
    /// bench: the handlers compared (the first is the ratios' base), runs per handler, and
    /// where every run's figures go (JSON).
    pub handlers: Vec<String>,
    pub runs: usize,
    pub out: Option<PathBuf>,
}

const USAGE: &str = "usage: cri-e2e --endpoint SOCK --handler NAME --image REF --pause-image REF \
[--cgroup-parent P] [--workdir DIR] [--subnet CIDR] SCENARIO|list|version\n   or: cri-e2e --endpoint SOCK --handlers H1,H2,... [--runs N] [--out FILE] --image REF \
--pause-image REF [--cgroup-parent P] bench";

fn parse_args() -> R<Opts> {
    let mut o = Opts {
        endpoint: PathBuf::new(),
        handler: String::new(),
        image: String::new(),
        pause_image: String::new(),
        cgroup_parent: String::new(),
        workdir: std::env::temp_dir().join("cri-e2e"),
        subnet: None,
        scenario: String::new(),
        handlers: Vec::new(),
        runs: 10,
        out: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or(format!("{name} needs a value\n{USAGE}"));
        match a.as_str() {
            "--endpoint" => o.endpoint = val(&a)?.into(),
            "--handler" => o.handler = val(&a)?,
            "--image" => o.image = val(&a)?,
            "--pause-image" => o.pause_image = val(&a)?,
            "--cgroup-parent" => o.cgroup_parent = val(&a)?,
            "--workdir" => o.workdir = val(&a)?.into(),
            "--subnet" => o.subnet = Some(val(&a)?),
            "--handlers" => {
                o.handlers = val(&a)?
                    .split([',', ' '])
                    .filter(|h| !h.is_empty())
                    .map(str::to_string)
                    .collect();
            }
            "--runs" => {
                let v = val(&a)?;
                o.runs = v.parse().map_err(|_| format!("--runs {v}: not a number"))?;
            }
            "--out" => o.out = Some(val(&a)?.into()),
            "-h" | "--help" => return Err(USAGE.into()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{USAGE}")),
            s if o.scenario.is_empty() => o.scenario = s.to_string(),
            s => return Err(format!("one scenario at a time ({s}?)\n{USAGE}")),
        }
    }
    if o.scenario.is_empty() {
        return Err(USAGE.into());
    }
    if o.scenario == "bench" && o.handler.is_empty() {
        o.handler = o.handlers.first().cloned().unwrap_or_default();
    }
    if o.scenario != "list" && (o.endpoint.as_os_str().is_empty() || o.handler.is_empty()) {
        return Err(format!("--endpoint and --handler are required\n{USAGE}"));
    }
    Ok(o)
}

/// A gRPC channel over containerd's unix socket (the authority is never used).
async fn connect(sock: PathBuf) -> Result<Channel, tonic::transport::Error> {
    Endpoint::try_from("http://[::]:50051")?
        .connect_with_connector(service_fn(move |_: Uri| {
            let sock = sock.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(sock).await?)) }
        }))
        .await
}

async fn run(opts: Opts) -> R<()> {
    if opts.scenario == "list" {
        for (name, what) in scenarios::LIST {
            println!("{name:22} {what}");
        }
        return Ok(());
    }
    let ch = connect(opts.endpoint.clone())
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", opts.endpoint.display()))?;
    let mut ctx = ctx::Ctx::new(ch, opts);
    if ctx.o.scenario == "bench" {
        let (handlers, runs, out) = (ctx.o.handlers.clone(), ctx.o.runs, ctx.o.out.clone());
        let res = bench::run(&mut ctx, &handlers, runs, out.as_deref()).await;
        let cleanup = ctx.cleanup().await;
        return res.and(cleanup);
    }
    // Whatever the scenario did, its pods go; a failed cleanup fails a passing scenario.
    let res = scenarios::run(&mut ctx).await;
    if res.is_err() {
        ctx.dump().await;
    }
    let cleanup = ctx.cleanup().await;
    res.and(cleanup)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let name = opts.scenario.clone();
    match run(opts).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("FAIL: {name}: {e}");
            ExitCode::FAILURE
        }
    }
}
