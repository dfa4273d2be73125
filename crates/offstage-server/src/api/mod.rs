//! The HTTP API's routes.

pub(crate) mod actions;
pub(crate) mod events;
pub(crate) mod fleet;
pub(crate) mod health;
pub(crate) mod limiters;
pub(crate) mod openapi;
pub(crate) mod schedules;
pub(crate) mod session;
pub(crate) mod shared;
pub(crate) mod signals;
pub(crate) mod stats;
pub(crate) mod tasks;
pub(crate) mod tokens;
pub(crate) mod workers;
