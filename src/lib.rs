//! Vltava: a Kafka wire-protocol-compatible broker.

pub mod broker;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod group;
pub mod handlers;
pub mod log;
pub mod server;
pub mod txn;
