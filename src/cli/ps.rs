//! `tong ps [--format table|json] ID [ps options]`

use super::Global;
use crate::container;
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// select one of: table or json (default: "table")
    #[arg(short = 'f', long, default_value = "table")]
    pub format: String,
    /// the container's id
    pub id: String,
    /// options for ps (default: -ef)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

pub fn run(g: &Global, a: Args) -> Result<i32> {
    let pids = container::pids(&g.root, &a.id)?;
    match a.format.as_str() {
        "json" => {
            println!(
                "{}",
                serde_json::to_string(&pids).map_err(|e| Error::other(e.to_string()))?
            );
            return Ok(0);
        }
        "table" => {}
        other => return Err(Error::Usage(format!("invalid format option {other:?}"))),
    }
    let args = if a.ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        a.ps_args.clone()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| Error::other(format!("running ps: {e}")))?;
    if !out.status.success() {
        return Err(Error::other(format!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| Error::other("couldn't find PID field in ps output"))?;
    println!("{header}");
    for l in lines {
        let pid = l
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{l}");
        }
    }
    Ok(0)
}
