//! One integration-test binary: the library's Dhan client and the real `dhan-keeper` binary,
//! both against the simulator on 127.0.0.1, with real files in temp dirs.

mod cli;
mod client;
mod config_errors;
mod helpers;
mod store;
