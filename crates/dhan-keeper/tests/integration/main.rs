//! One integration-test binary: the library's Dhan client and the real `dhan-keeper` binary,
//! both against the simulators on 127.0.0.1, with real files in temp dirs.

mod accounts;
mod bot;
mod calendar;
mod cli;
mod client;
mod config_errors;
mod crash;
mod daemon;
mod events;
mod family;
mod faults;
mod first_day;
mod fleet;
mod fleet_chaos;
mod fleet_daemon;
mod fleet_family;
mod fleet_harness;
mod helpers;
mod lifecycle;
mod real_dhan;
mod redis_server;
mod security;
mod store;
mod virtual_time;
