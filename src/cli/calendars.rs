//! The flags of `calendar ...`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use cronvisor_roles::model::CalendarKind;

use super::JsonFlag;

#[derive(Debug, Subcommand)]
#[command(
    after_help = "Shipped: cn-workdays, cn-holidays (China, make-up workdays included), \
us-holidays, de-holidays, gb-holidays, fr-holidays, jp-holidays. A job uses calendars with \
`--calendar NAME[,NAME] --calendar-mode skip|only|next-workday`."
)]
pub enum CalendarCommand {
    /// Add a calendar: its days given (--dates) or read from a file (TOML or iCalendar).
    Add(CalendarWriteArgs),
    /// The calendars: shipped ones and yours.
    List(JsonFlag),
    /// One calendar; with --year, its days that year.
    Show(CalendarShowArgs),
    /// Replace a calendar's days (the jobs that use it are planned again).
    Edit(CalendarWriteArgs),
    /// Delete a calendar no job uses.
    Delete(CalendarRef),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Days: 2026-10-01, a range 2026-10-01..2026-10-07, or 12-25 for every \
year. A workdays calendar is Monday to Friday, minus its days, plus its --workdays."
)]
pub struct CalendarWriteArgs {
    /// The calendar's name.
    pub name: String,
    /// Its days, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "DAY,...",
        conflicts_with = "file"
    )]
    pub dates: Vec<String>,
    /// A file of its days: TOML (as `calendars/*.toml`) or iCalendar (.ics).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// days (the days listed; default) or workdays.
    #[arg(long)]
    pub kind: Option<CalendarKind>,
    /// A workdays calendar's make-up workdays (weekend days worked), comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "DAY,...")]
    pub workdays: Vec<String>,
    /// What it is, in words.
    #[arg(long)]
    pub description: Option<String>,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args)]
pub struct CalendarShowArgs {
    pub name: String,
    /// List its days of this year.
    #[arg(long)]
    pub year: Option<i32>,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args)]
pub struct CalendarRef {
    pub name: String,
}
