//! `tong list`

use super::Global;
use crate::container;
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// select one of: table or json (default: "table")
    #[arg(short = 'f', long, default_value = "table")]
    pub format: String,
    /// display only container IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

pub fn run(g: &Global, a: Args) -> Result<i32> {
    let all = container::list(&g.root)?;
    if a.quiet {
        for s in &all {
            println!("{}", s.id);
        }
        return Ok(0);
    }
    match a.format.as_str() {
        "table" => {
            let mut rows = vec![
                ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
                    .map(String::from)
                    .to_vec(),
            ];
            for s in &all {
                rows.push(vec![
                    s.id.clone(),
                    s.pid.to_string(),
                    s.status.clone(),
                    s.bundle.clone(),
                    s.created.clone(),
                    s.owner.clone(),
                ]);
            }
            print!("{}", table(&rows));
        }
        "json" => {
            println!(
                "{}",
                serde_json::to_string(&all).map_err(|e| Error::other(e.to_string()))?
            );
        }
        other => return Err(Error::Usage(format!("invalid format option {other:?}"))),
    }
    Ok(0)
}

/// Columns as Go's tabwriter lays them out for runc (min width 12, padding 3).
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map_or(0, |r| r.len());
    let mut width = vec![0; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate().take(cols.saturating_sub(1)) {
            width[i] = width[i].max((c.chars().count() + 3).max(12));
        }
    }
    let mut out = String::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 < cols {
                out.push_str(&format!("{c:<w$}", w = width[i]));
            } else {
                out.push_str(c);
            }
        }
        out.push('\n');
    }
    out
}
