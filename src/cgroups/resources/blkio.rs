//! `linux.resources.blockIO`: v1 blkio weights and throttles, or v2 io.weight and io.max.

use std::path::Path;

use oci_spec::runtime::LinuxBlockIo;

use super::{missing, write};
use crate::cgroups::Dirs;
use crate::error::{Error, Result};
use crate::logging;

/// blkio weight (10..1000) to io.weight (1..10000), runc's formula.
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + ((w.clamp(10, 1000) as u64 - 10) * 9999) / 990
}

pub(super) fn blkio(d: &Dirs, b: &LinuxBlockIo) -> Result<()> {
    let throttles = [
        (
            b.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
            "rbps",
        ),
        (
            b.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
            "wbps",
        ),
        (
            b.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
            "riops",
        ),
        (
            b.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
            "wiops",
        ),
    ];
    if let Some(dir) = d.v1("blkio") {
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            write_first(dir, &["blkio.bfq.weight", "blkio.weight"], w)
                .map_err(|e| Error::config(format!("linux.resources.blockIO.weight: {e}")))?;
        }
        if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
            write(dir, "blkio.leaf_weight", w)?;
        }
        for wd in b.weight_device().iter().flatten() {
            if let Some(w) = wd.weight() {
                write_first(
                    dir,
                    &["blkio.bfq.weight_device", "blkio.weight_device"],
                    format!("{}:{} {w}", wd.major(), wd.minor()),
                )?;
            }
            if let Some(w) = wd.leaf_weight() {
                write(
                    dir,
                    "blkio.leaf_weight_device",
                    format!("{}:{} {w}", wd.major(), wd.minor()),
                )?;
            }
        }
        for (list, file, _) in throttles {
            for t in list.iter().flatten() {
                write(
                    dir,
                    file,
                    format!("{}:{} {}", t.major(), t.minor(), t.rate()),
                )?;
            }
        }
        return Ok(());
    }
    let Some(dir) = d.v2_with("io") else {
        if b.weight().is_some()
            || throttles
                .iter()
                .any(|(l, _, _)| l.as_ref().is_some_and(|v| !v.is_empty()))
        {
            return Err(missing("blockIO"));
        }
        return Ok(());
    };
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        write_first(dir, &["io.bfq.weight", "io.weight"], blkio_to_io_weight(w))
            .map_err(|e| Error::config(format!("linux.resources.blockIO.weight: {e}")))?;
    }
    if b.leaf_weight().is_some() {
        logging::warn("linux.resources.blockIO.leafWeight is not supported on cgroup v2, ignored");
    }
    for wd in b.weight_device().iter().flatten() {
        if let Some(w) = wd.weight() {
            write(
                dir,
                "io.weight",
                format!("{}:{} {}", wd.major(), wd.minor(), blkio_to_io_weight(w)),
            )?;
        }
    }
    for (list, _, key) in throttles {
        for t in list.iter().flatten() {
            write(
                dir,
                "io.max",
                format!("{}:{} {key}={}", t.major(), t.minor(), t.rate()),
            )?;
        }
    }
    Ok(())
}

/// Writes to the first of `files` that exists.
fn write_first(dir: &Path, files: &[&str], value: impl ToString) -> Result<()> {
    for f in files {
        if dir.join(f).exists() {
            return write(dir, f, value);
        }
    }
    Err(Error::other(format!(
        "none of {files:?} exists in {}",
        dir.display()
    )))
}
