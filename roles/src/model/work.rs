//! What a run does, as its job defines it: the fields of a [`RunRequest`] that come from the
//! job. The dispatcher builds them from its copy of the job; the executor, at the claim, takes
//! them from the store and never from the request — so a request sent by anyone else who holds
//! the RPC token (or a dispatcher's stale copy) cannot make an executor run another command,
//! environment or user than the job's as stored.

use std::collections::BTreeMap;

use super::{HttpCall, Job, Limits, Overlap, RunRequest};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Work {
    pub job_id: i64,
    pub job_name: String,
    pub command: String,
    pub http: Option<HttpCall>,
    pub timeout_secs: Option<i64>,
    pub timezone: String,
    pub env: BTreeMap<String, String>,
    pub retries: i64,
    pub retry_backoff_secs: i64,
    pub run_as: Option<String>,
    pub group: String,
    pub limits: Limits,
    /// Taken from the store like the rest, but not compared (a dispatcher older than the
    /// fence of `forbid` runs does not send it).
    pub overlap: Overlap,
}

impl Work {
    /// The work of `job`; `Err` when it has nothing to run.
    pub fn of(job: &Job) -> Result<Work, String> {
        let http = job.http_url.as_ref().map(|url| HttpCall {
            method: job.http_method.clone(),
            url: url.clone(),
            headers: job.http_headers.clone(),
            body: job.http_body.clone(),
            expect_status: job.http_expect_status,
        });
        let command = job
            .command
            .clone()
            .or_else(|| job.http_url.clone())
            .ok_or_else(|| "job has no command".to_string())?;
        Ok(Work {
            job_id: job.id,
            job_name: job.name.clone(),
            command,
            http,
            timeout_secs: job.timeout_secs,
            timezone: job.timezone.clone(),
            env: job.env.clone(),
            retries: job.retries,
            retry_backoff_secs: job.retry_backoff_secs,
            run_as: job.run_as.clone(),
            group: job.group.clone(),
            limits: job.limits,
            overlap: job.overlap,
        })
    }

    /// The work a request asks for.
    pub fn asked(r: &RunRequest) -> Work {
        Work {
            job_id: r.job_id,
            job_name: r.job_name.clone(),
            command: r.command.clone(),
            http: r.http.clone(),
            timeout_secs: r.timeout_secs,
            timezone: r.timezone.clone(),
            env: r.env.clone(),
            retries: r.retries,
            retry_backoff_secs: r.retry_backoff_secs,
            run_as: r.run_as.clone(),
            group: r.group.clone(),
            limits: r.limits,
            overlap: r.overlap,
        }
    }

    /// Which fields of `other` differ from these (names only: values may be secrets).
    pub fn differences(&self, other: &Work) -> Vec<&'static str> {
        let mut d = Vec::new();
        let mut check = |same: bool, name: &'static str| {
            if !same {
                d.push(name);
            }
        };
        check(self.job_id == other.job_id, "job");
        check(self.command == other.command, "command");
        check(self.http == other.http, "http");
        check(self.env == other.env, "env");
        check(self.run_as == other.run_as, "run_as");
        check(self.group == other.group, "group");
        check(self.limits == other.limits, "limits");
        check(self.timeout_secs == other.timeout_secs, "timeout");
        check(self.timezone == other.timezone, "timezone");
        check(
            (self.retries, self.retry_backoff_secs) == (other.retries, other.retry_backoff_secs),
            "retries",
        );
        d
    }

    /// A request for the run `run` doing this work: its own fields (id, instant, attempt,
    /// shard, parameters, flow) from `run`, the job's from this.
    pub fn put_into(self, run: &mut RunRequest) {
        run.job_id = self.job_id;
        run.job_name = self.job_name;
        run.command = self.command;
        run.http = self.http;
        run.timeout_secs = self.timeout_secs;
        run.timezone = self.timezone;
        run.env = self.env;
        run.retries = self.retries;
        run.retry_backoff_secs = self.retry_backoff_secs;
        run.run_as = self.run_as;
        run.group = self.group;
        run.limits = self.limits;
        run.overlap = self.overlap;
    }
}
