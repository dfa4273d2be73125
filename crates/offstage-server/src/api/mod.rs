//! The HTTP API's routes.

pub(crate) mod events;
pub(crate) mod tasks;
