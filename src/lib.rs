//! tong: an OCI container runtime.
//!
//! The layers follow the container lifecycle:
//! - [`cli`] parses runc's command line and dispatches, one file per command;
//! - [`spec`] loads and validates a bundle's config.json;
//! - [`container`] owns the state directory and the lifecycle operations;
//! - [`launch`] clones the container's init and synchronises with it;
//! - [`linux`] holds one module per kernel mechanism (namespaces, rootfs, devices, ...);
//! - [`cgroups`] places containers in their control groups.

pub mod cgroups;
pub mod cli;
pub mod container;
pub mod error;
pub mod launch;
pub mod linux;
pub mod logging;
pub mod spec;

pub use error::{Error, Result};
