//! The flags of backfills and retries (`job backfill`, `backfill ...`, `run retry`).

use clap::{Args, Subcommand};

use super::JsonFlag;

#[derive(Debug, Args)]
#[command(
    after_help = "Times are RFC 3339 (2026-11-01T02:00:00Z), a local time in the job's \
zone (\"2026-11-01 02:00\"), or a date: --from 2026-11-01 --to 2026-11-30 covers all of November. \
The backfill is recorded: it goes on across reloads and crashes; see `cronvisor backfill show ID`."
)]
pub struct JobBackfillArgs {
    /// Job name or id (a job with a rule: what runs after it follows each instant).
    pub job: String,
    /// The range's first end.
    #[arg(long, value_name = "TIME")]
    pub from: String,
    /// The range's last end, inclusive (in the past).
    #[arg(long, value_name = "TIME")]
    pub to: String,
    /// At most this many instants at a time (1 to 64; default 1). A job whose overlap is not
    /// `allow` runs one at a time whatever this says.
    #[arg(long, value_name = "N")]
    pub parallel: Option<i64>,
    /// Run again the instants that already had a succeeded run (by default they are left out,
    /// so a second backfill of the same range adds nothing).
    #[arg(long)]
    pub all: bool,
    /// Print the instants it would run, recording nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum BackfillCommand {
    /// Backfills, newest first, with their progress.
    List(BackfillListArgs),
    /// One backfill: its range, progress and runs' outcomes.
    Show(BackfillRef),
    /// Stop a running backfill: no further instant starts (runs going end as they end).
    Cancel(BackfillRef),
}

#[derive(Debug, Args)]
pub struct BackfillListArgs {
    /// Only this job's.
    #[arg(long)]
    pub job: Option<String>,
    /// running, done or cancelled.
    #[arg(long)]
    pub state: Option<String>,
    /// At most this many (default 50).
    #[arg(long)]
    pub limit: Option<i64>,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args)]
pub struct BackfillRef {
    /// The backfill's id.
    pub id: i64,
    #[command(flatten)]
    pub out: JsonFlag,
}
