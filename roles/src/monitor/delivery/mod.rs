//! The monitor's alarm delivery: what is raised (`alarms::Alarmer`: stored, merged, retried)
//! and how it reaches people — e-mail, webhooks, chat robots and SMS gateways (`sms`). Apart
//! from the checks that find things and the web side that shows them, because each channel
//! fails in its own ways (timeouts, refusals, signatures) and is retried on its own schedule.

pub mod alarms;
mod channels;
pub(crate) mod sms;
