//! The end-to-end tests, in one binary (one link, and the test harness keeps both cores busy
//! across files): each module is one area, run against the built `hawker` binary with real
//! clients (see `common`).

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod ladder;
mod lifecycle;
mod llhls;
mod nodes;
mod observability;
mod package;
mod pages;
mod proxy;
mod publish;
mod reconnect;
mod recovery;
mod s3;
mod security;
mod shopping;
mod timing;
