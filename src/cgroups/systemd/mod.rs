//! The systemd cgroup driver (`--systemd-cgroup`): systemd owns the container's cgroup as a
//! transient unit, `<prefix>-<name>.scope` in a slice, started over D-Bus with the init's
//! pid; tong then writes the limits as unit properties and into the cgroup files, as runc's
//! driver does. On a v1 or hybrid host the properties take systemd's v1 names, and the
//! hierarchies systemd does not manage (freezer, cpuset, ...) are tong's to create and join
//! (super::handle).
//!
//! `cgroupsPath` is `slice:prefix:name` ([`Unit::parse`]); [`expand_slice`] turns a slice
//! name into its cgroup path the way systemd does.

mod dbus;
mod gvariant;
mod props;
mod wire;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use dbus::{Conn, DbusError};
use props::Names;
use wire::{Value, property};

/// The property names this host's systemd takes.
fn names() -> Names {
    if crate::cgroups::pure_v2() {
        Names::V2
    } else {
        Names::V1
    }
}

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// How long a job (start or stop of the unit) may take, as runc waits.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

/// The container's unit, recorded in the state.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// `tong-<id>.scope`, or a slice's name.
    pub name: String,
    /// The slice it goes in (`system.slice`).
    pub slice: String,
    /// The `org.systemd.property.*` annotations, read at create (not saved).
    #[serde(skip)]
    pub extra: Vec<(String, String)>,
    /// The unit's Description= (`tong container NAME`), at create (not saved).
    #[serde(skip)]
    pub description: String,
}

impl Unit {
    /// The unit for `cgroupsPath` (`slice:prefix:name`, or empty: `system.slice`, prefix
    /// `tong`, the container id), as runc's driver reads it.
    pub fn parse(cgroups_path: Option<&str>, id: &str) -> Result<Unit> {
        let (slice, prefix, name) = match cgroups_path.filter(|p| !p.is_empty()) {
            None => (String::new(), "tong".to_string(), id.to_string()),
            Some(p) => {
                let parts: Vec<&str> = p.split(':').collect();
                let [slice, prefix, name] = parts.as_slice() else {
                    return Err(Error::config(format!(
                        "linux.cgroupsPath: expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, got {p:?} instead"
                    )));
                };
                (slice.to_string(), prefix.to_string(), name.to_string())
            }
        };
        let slice = if slice.is_empty() {
            "system.slice".to_string()
        } else {
            slice
        };
        expand_slice(&slice)?;
        if name.is_empty() || name.contains('/') {
            return Err(Error::config(format!(
                "linux.cgroupsPath: invalid unit name {name:?}"
            )));
        }
        let description = format!("tong container {name}");
        let name = if name.ends_with(".slice") {
            expand_slice(&name)?;
            name
        } else {
            format!("{prefix}-{name}.scope")
        };
        Ok(Unit {
            name,
            slice,
            extra: Vec::new(),
            description,
        })
    }

    pub fn is_slice(&self) -> bool {
        self.name.ends_with(".slice")
    }

    /// The unit's cgroup, relative to the cgroup2 root: the slice's path, then the scope.
    /// A slice's own name says where systemd puts it (`a-b.slice` under `a.slice`).
    pub fn cgroup(&self) -> Result<PathBuf> {
        if self.is_slice() {
            return Ok(PathBuf::from(
                expand_slice(&self.name)?.trim_start_matches('/'),
            ));
        }
        let slice = expand_slice(&self.slice)?;
        Ok(PathBuf::from(slice.trim_start_matches('/')).join(&self.name))
    }
}

/// A slice's cgroup path, as systemd nests slices: `a-b.slice` is `/a.slice/a-b.slice`,
/// `-.slice` the root.
pub fn expand_slice(slice: &str) -> Result<String> {
    let bad = || Error::config(format!("linux.cgroupsPath: invalid slice name: {slice}"));
    let base = slice.strip_suffix(".slice").ok_or_else(bad)?;
    if slice.contains('/') {
        return Err(bad());
    }
    if base == "-" {
        return Ok("/".into());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for c in base.split('-') {
        if c.is_empty() {
            return Err(bad());
        }
        path.push_str(&format!("/{prefix}{c}.slice"));
        prefix.push_str(c);
        prefix.push('-');
    }
    Ok(path)
}

/// The `org.systemd.property.*` annotations, checked as runc checks them: a name of letters
/// only, a value in GVariant text; `...Sec` names are converted to `...USec`.
pub fn annotation_properties(ann: &[(String, String)]) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for (k, v) in ann {
        let Some(name) = k.strip_prefix("org.systemd.property.") else {
            continue;
        };
        if name.len() < 3 || !name.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(Error::config(format!(
                "annotations: {k}: not a systemd property name"
            )));
        }
        let bad = |e: String| Error::config(format!("annotations: {k}={v}: {e}"));
        let value = gvariant::parse(v).map_err(bad)?;
        let (name, value) = gvariant::sec_to_usec(name, value).map_err(bad)?;
        out.push(property(&name, value));
    }
    Ok(out)
}

fn dbus_err(what: &str, unit: &str, e: DbusError) -> Error {
    Error::other(format!("systemd: {what} {unit}: {e}"))
}

/// A connection to systemd; `jobs`: one that will wait for jobs' ends (their signals).
fn connect(jobs: bool) -> Result<Conn> {
    let mut c = Conn::system().map_err(|e| Error::other(format!("systemd: {e}")))?;
    if !jobs {
        return Ok(c);
    }
    // Job signals: on the bus a match rule, and (bus or private socket) Subscribe.
    if c.bus {
        c.call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "AddMatch",
            &[Value::Str(format!(
                "type='signal',sender='{DEST}',path='{PATH}',interface='{MANAGER}',member='JobRemoved'"
            ))],
        )
        .map_err(|e| Error::other(format!("systemd: AddMatch: {e}")))?;
    }
    c.call(DEST, PATH, MANAGER, "Subscribe", &[])
        .map_err(|e| Error::other(format!("systemd: Subscribe: {e}")))?;
    Ok(c)
}

/// systemd's version number (`252` of "252.39-1~deb12u2"); 0 when unknown.
fn version(c: &mut Conn) -> u32 {
    let r = c.call(
        DEST,
        PATH,
        "org.freedesktop.DBus.Properties",
        "Get",
        &[Value::Str(MANAGER.into()), Value::Str("Version".into())],
    );
    let v = r
        .ok()
        .and_then(|b| b.first().and_then(Value::as_str).map(str::to_string));
    v.unwrap_or_default()
        .trim_start_matches('v')
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Waits for the end of `job` (its JobRemoved signal); returns its result ("done", ...).
fn wait_job(c: &mut Conn, job: &str) -> std::result::Result<String, DbusError> {
    let m = c.wait_signal(JOB_TIMEOUT, |m| {
        m.member.as_deref() == Some("JobRemoved")
            && m.body.get(1).and_then(Value::as_str) == Some(job)
    })?;
    Ok(m.body
        .get(3)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string())
}

fn job_path(body: &[Value]) -> String {
    body.first()
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Starts the container's unit holding `pid`, with the accounting properties, then the
/// annotations' (which override tong's own), and waits for the job. The limits `r` follow
/// as unit properties, over the same connection, as runc's driver sets them.
pub fn start(unit: &Unit, pid: i32, r: Option<&LinuxResources>) -> Result<()> {
    let mut c = connect(true)?;
    let mut p = vec![property(
        "Description",
        Value::Str(unit.description.clone()),
    )];
    if unit.is_slice() {
        // A slice holds no process: tong moves the init into its cgroup itself.
        p.push(property(
            "Wants",
            Value::Array("s".into(), vec![Value::Str(unit.slice.clone())]),
        ));
    } else {
        p.push(property("Slice", Value::Str(unit.slice.clone())));
        p.push(property("Delegate", Value::Bool(true)));
        p.push(property(
            "PIDs",
            Value::Array("u".into(), vec![Value::U32(pid as u32)]),
        ));
    }
    let io = match names() {
        Names::V2 => "IOAccounting",
        Names::V1 => "BlockIOAccounting",
    };
    for a in ["MemoryAccounting", "CPUAccounting", io, "TasksAccounting"] {
        p.push(property(a, Value::Bool(true)));
    }
    p.push(property("DefaultDependencies", Value::Bool(false)));
    p.extend(annotation_properties(&unit.extra)?);
    let args = [
        Value::Str(unit.name.clone()),
        Value::Str("replace".into()),
        Value::Array("(sv)".into(), p),
        Value::Array("(sa(sv))".into(), vec![]),
    ];
    let job = match c.call(DEST, PATH, MANAGER, "StartTransientUnit", &args) {
        Ok(b) => Some(job_path(&b)),
        Err(e) if e.is("org.freedesktop.systemd1.UnitExists") => None,
        Err(e) => return Err(dbus_err("cannot start unit", &unit.name, e)),
    };
    if let Some(job) = job {
        wait_start(&mut c, unit, &job)?;
    }
    match r {
        Some(r) => set_on(&mut c, unit, r),
        None => Ok(()),
    }
}

fn wait_start(c: &mut Conn, unit: &Unit, job: &str) -> Result<()> {
    match wait_job(c, job) {
        Ok(res) if res == "done" => Ok(()),
        Ok(res) => {
            reset_failed(c, &unit.name);
            Err(Error::other(format!(
                "systemd: error creating unit {}: got {res:?}",
                unit.name
            )))
        }
        Err(e) => {
            reset_failed(c, &unit.name);
            Err(dbus_err("waiting for the start of", &unit.name, e))
        }
    }
}

fn reset_failed(c: &mut Conn, name: &str) {
    let _ = c.call(
        DEST,
        PATH,
        MANAGER,
        "ResetFailedUnit",
        &[Value::Str(name.into())],
    );
}

/// Sets the unit's resource properties (at every `update`; at create [`start`] does).
pub fn set(unit: &Unit, r: &LinuxResources) -> Result<()> {
    set_on(&mut connect(false)?, unit, r)
}

fn set_on(c: &mut Conn, unit: &Unit, r: &LinuxResources) -> Result<()> {
    let version = version(c);
    let p = props::resources(r, version, names())?;
    if p.is_empty() {
        return Ok(());
    }
    c.call(
        DEST,
        PATH,
        MANAGER,
        "SetUnitProperties",
        &[
            Value::Str(unit.name.clone()),
            Value::Bool(true),
            Value::Array("(sv)".into(), p),
        ],
    )
    .map_err(|e| dbus_err("cannot set properties of", &unit.name, e))?;
    Ok(())
}

/// Stops the unit and waits until systemd has forgotten it (a failed unit is reset).
/// `cgroup_exists`: whether the unit's cgroup is on disk. Without one, a systemd that does
/// not answer is no error: a create that failed on connecting started no unit.
pub fn stop(unit: &Unit, cgroup_exists: bool) -> Result<()> {
    let mut c = match connect(true) {
        Ok(c) => c,
        Err(_) if !cgroup_exists => return Ok(()),
        Err(e) => return Err(e),
    };
    match c.call(
        DEST,
        PATH,
        MANAGER,
        "StopUnit",
        &[Value::Str(unit.name.clone()), Value::Str("replace".into())],
    ) {
        Ok(b) => {
            let job = job_path(&b);
            match wait_job(&mut c, &job) {
                Ok(r) if r == "done" => {}
                Ok(r) => crate::logging::warn(&format!(
                    "error removing unit {}: got {r:?}. Continuing...",
                    unit.name
                )),
                Err(e) => return Err(dbus_err("waiting for the stop of", &unit.name, e)),
            }
        }
        Err(e) if e.is("org.freedesktop.systemd1.NoSuchUnit") => return Ok(()),
        Err(e) => return Err(dbus_err("cannot stop unit", &unit.name, e)),
    }
    reset_failed(&mut c, &unit.name);
    // Gone when GetUnit no longer knows it (a stopped transient unit is collected).
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match c.call(
            DEST,
            PATH,
            MANAGER,
            "GetUnit",
            &[Value::Str(unit.name.clone())],
        ) {
            Err(e) if e.is("org.freedesktop.systemd1.NoSuchUnit") => return Ok(()),
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    Err(Error::other(format!(
        "systemd: unit {} still loaded 5s after it stopped",
        unit.name
    )))
}

/// Whether systemd runs this host (runc's test: /run/systemd/system is a directory).
pub fn running() -> bool {
    std::fs::symlink_metadata("/run/systemd/system").is_ok_and(|m| m.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_expand_as_systemd_nests_them() {
        assert_eq!(expand_slice("-.slice").unwrap(), "/");
        assert_eq!(expand_slice("system.slice").unwrap(), "/system.slice");
        assert_eq!(
            expand_slice("a-b-c.slice").unwrap(),
            "/a.slice/a-b.slice/a-b-c.slice"
        );
        for bad in ["a", "a--b.slice", "a/b.slice", "-a.slice", ".slice"] {
            assert!(expand_slice(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cgroups_path_is_three_fields() {
        let u = Unit::parse(None, "c1").unwrap();
        assert_eq!(
            (u.name.as_str(), u.slice.as_str()),
            ("tong-c1.scope", "system.slice")
        );
        assert_eq!(
            u.cgroup().unwrap(),
            PathBuf::from("system.slice/tong-c1.scope")
        );
        let u = Unit::parse(Some("machine-pod.slice:docker:abc"), "c1").unwrap();
        assert_eq!(
            u.cgroup().unwrap(),
            PathBuf::from("machine.slice/machine-pod.slice/docker-abc.scope")
        );
        let u = Unit::parse(Some(":p:x"), "c1").unwrap();
        assert_eq!(u.name, "p-x.scope");
        let u = Unit::parse(Some("system.slice:p:tong-t.slice"), "c1").unwrap();
        assert!(u.is_slice());
        assert_eq!(
            u.cgroup().unwrap(),
            PathBuf::from("tong.slice/tong-t.slice")
        );
        for bad in [
            "/a/b",
            "a:b",
            "a:b:c:d",
            "x:p:n",
            "system.slice:p:",
            "system.slice:p:a/b",
        ] {
            let e = Unit::parse(Some(bad), "c1").unwrap_err().to_string();
            assert!(e.contains("cgroupsPath"), "{bad}: {e}");
        }
    }

    #[test]
    fn annotations_become_properties() {
        let ann = vec![
            (
                "org.systemd.property.TimeoutStopSec".to_string(),
                "3".to_string(),
            ),
            (
                "org.systemd.property.CollectMode".into(),
                "'inactive-or-failed'".into(),
            ),
            ("other".into(), "x".into()),
        ];
        let p = annotation_properties(&ann).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0], property("TimeoutStopUSec", Value::U64(3_000_000)));
        for bad in [
            ("org.systemd.property.A1x", "1"),
            ("org.systemd.property.Foo", "'x"),
        ] {
            let e = annotation_properties(&[(bad.0.into(), bad.1.into())]).unwrap_err();
            assert!(
                e.to_string().contains("annotations: org.systemd.property."),
                "{e}"
            );
        }
    }
}
