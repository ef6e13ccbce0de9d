//! Capabilities: the five sets of `process.capabilities`.

use std::str::FromStr;

use caps::{CapSet, Capability};
use oci_spec::runtime::LinuxCapabilities;

use crate::error::{Context, Error, Result};
use crate::linux::sys;

/// The highest capability the running kernel knows: the last one PR_CAPBSET_READ accepts.
/// Asked of the kernel rather than read from /proc/sys/kernel/cap_last_cap, which in the
/// container's init is the container's /proc, where a mount could feed it a low number
/// and leave the bounding set full.
pub fn last_cap() -> u8 {
    static LAST: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *LAST.get_or_init(|| {
        let mut last = 0u8;
        for n in 0..64u8 {
            if sys::prctl(libc::PR_CAPBSET_READ, n as libc::c_ulong).is_err() {
                break;
            }
            last = n;
        }
        last
    })
}

/// Whether a capability name is known to the spec types, the caps crate and the kernel.
pub fn known(name: &str) -> bool {
    let in_spec =
        serde_json::from_value::<oci_spec::runtime::Capability>(serde_json::Value::from(name))
            .is_ok();
    in_spec && Capability::from_str(name).is_ok_and(|c| c.index() <= last_cap())
}

fn to_caps(set: &Option<oci_spec::runtime::Capabilities>) -> Result<Vec<Capability>> {
    let mut out = Vec::new();
    for c in set.iter().flatten() {
        let name = serde_json::to_value(c)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        match Capability::from_str(&name) {
            Ok(cap) => out.push(cap),
            Err(_) => crate::logging::warn(&format!("unknown capability {name}, ignored")),
        }
    }
    Ok(out)
}

fn mask(caps: &[Capability]) -> u64 {
    caps.iter().fold(0u64, |m, c| m | c.bitmask())
}

/// The capability sets a process should end up with.
pub struct CapSets {
    bounding: Vec<Capability>,
    effective: u64,
    permitted: u64,
    inheritable: u64,
    ambient: Vec<Capability>,
}

impl CapSets {
    pub fn from_spec(c: Option<&LinuxCapabilities>) -> Result<CapSets> {
        let Some(c) = c else {
            return Ok(CapSets {
                bounding: vec![],
                effective: 0,
                permitted: 0,
                inheritable: 0,
                ambient: vec![],
            });
        };
        Ok(CapSets {
            bounding: to_caps(c.bounding())?,
            effective: mask(&to_caps(c.effective())?),
            permitted: mask(&to_caps(c.permitted())?),
            inheritable: mask(&to_caps(c.inheritable())?),
            ambient: to_caps(c.ambient())?,
        })
    }

    /// Drops from the bounding set every capability not listed. Needs CAP_SETPCAP, so it
    /// runs before the user changes.
    pub fn apply_bounding(&self) -> Result<()> {
        let keep = mask(&self.bounding);
        for cap in caps::all() {
            if cap.index() > last_cap() || keep & cap.bitmask() != 0 {
                continue;
            }
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|e| Error::other(format!("dropping {cap} from the bounding set: {e}")))?;
        }
        Ok(())
    }

    /// Sets effective, permitted and inheritable at once, then raises the ambient set.
    pub fn apply(&self) -> Result<()> {
        sys::capset(self.effective, self.permitted, self.inheritable).ctx(|| "capset".into())?;
        for cap in &self.ambient {
            // The kernel refuses an ambient capability that is not permitted and inheritable;
            // runc ignores that, and so do we, with a warning.
            if let Err(e) = caps::raise(None, CapSet::Ambient, *cap) {
                crate::logging::debug(&format!("cannot raise ambient capability {cap}: {e}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn names() {
        assert!(known("CAP_CHOWN"));
        assert!(!known("CAP_FOO_BAR"));
        assert!(!known("chown"));
    }
}
