//! Alerting foundations the incident controller builds on: the reseller's business calendar
//! (when an incident report is due) and the delivery of notices (e-mail, fax gateway, signed
//! webhook), one attempt at a time.

pub mod calendar;
pub mod notify;
