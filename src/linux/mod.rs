//! Linux mechanisms, one module each, with narrow APIs. Raw system calls live in [`sys`].

pub mod apparmor;
pub mod capabilities;
pub mod criu;
pub mod devices;
pub mod hooks;
pub mod idmap;
pub mod inroot;
pub mod mounts;
pub mod namespaces;
pub mod proc;
pub mod process;
pub mod rootfs;
pub mod seal;
pub mod seccomp;
pub mod sys;
pub mod terminal;
