//! The flags of `window ...`.

use clap::{Args, Subcommand};

use super::JsonFlag;

#[derive(Debug, Subcommand)]
pub enum WindowCommand {
    /// Add a maintenance window: the scheduled instants of the jobs it holds are recorded
    /// `skipped` while it lasts.
    Add(WindowAddArgs),
    /// The windows, and which are going now.
    List(JsonFlag),
    /// Delete a window.
    Delete(WindowRef),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Once: --from T --to T. Recurring: --every RULE --for DURATION (bounded by \
--from/--to if given). Times are RFC 3339 or local times (\"2026-12-24 22:00\") in --tz."
)]
pub struct WindowAddArgs {
    /// The window's name.
    pub name: String,
    /// Its start (a recurring one's first).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// Its end, exclusive (a recurring one's last).
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Only this group's jobs.
    #[arg(long, conflicts_with = "job")]
    pub group: Option<String>,
    /// Only this job.
    #[arg(long)]
    pub job: Option<String>,
    /// Recurring: each instant of this rule starts the window…
    #[arg(long, value_name = "RULE", requires = "lasts")]
    pub every: Option<String>,
    /// …which lasts this long (90m, 2h; at most 7d).
    #[arg(long = "for", value_name = "DURATION", requires = "every")]
    pub lasts: Option<String>,
    /// The zone of its times and rule; default the config's `timezone`.
    #[arg(long = "tz", value_name = "ZONE")]
    pub timezone: Option<String>,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args)]
pub struct WindowRef {
    pub name: String,
}
