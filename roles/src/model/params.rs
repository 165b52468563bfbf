//! A job's declared parameters (`--param NAME=DEFAULT`, `--param NAME` for a required one,
//! `--param-choices NAME=a|b|c`, `--secret-param NAME`) and the values of one run: what a run
//! sees as `CRONVISOR_PARAM_<NAME>`, checked against the declaration before it is recorded.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{FieldError, MASK};

pub const MAX_PARAMS: usize = 32;
pub const MAX_PARAM_NAME: usize = 64;
pub const MAX_PARAM_VALUE: usize = 4096;

/// One declared parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Param {
    /// Letters, digits and `_`, not starting with a digit: the run sees
    /// `CRONVISOR_PARAM_<NAME>`.
    pub name: String,
    /// Its value when a run gives none; none: a run must give one (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// The only values it may take (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// Its values are shown as `***` (the job's default, and each run's value).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
}

/// The values of one run: what it runs with, and what people may be shown of them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Values {
    pub real: BTreeMap<String, String>,
    pub shown: BTreeMap<String, String>,
}

impl Values {
    /// (real, shown) as the store keeps them, JSON objects.
    pub fn to_json(&self) -> (String, String) {
        (
            serde_json::to_string(&self.real).unwrap_or_else(|_| "{}".into()),
            serde_json::to_string(&self.shown).unwrap_or_else(|_| "{}".into()),
        )
    }
}

fn check_name(name: &str) -> Result<(), FieldError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_PARAM_NAME
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            "params",
            format!(
                "`{name}`: a parameter's name is letters, digits and `_` (not first), at most \
                 {MAX_PARAM_NAME}"
            ),
        ))
    }
}

fn check_value(field: &str, name: &str, v: &str) -> Result<(), FieldError> {
    if v.len() > MAX_PARAM_VALUE || v.contains('\0') {
        return Err(FieldError::new(
            field,
            format!("`{name}`: a value is at most {MAX_PARAM_VALUE} bytes, without NUL"),
        ));
    }
    Ok(())
}

/// The declaration from `--param` lines (`NAME=DEFAULT`, `NAME`), `--param-choices`
/// (`NAME=a|b|c`) and `--secret-param` names, over the current one: given lines replace the
/// list (a secret default sent back as `***` keeps the current value); choices and secrets
/// apply to the names declared.
pub fn declare(
    lines: Option<&[String]>,
    choices: Option<&[String]>,
    secret: Option<&[String]>,
    current: &[Param],
) -> Result<Vec<Param>, FieldError> {
    let mut params: Vec<Param> = match lines {
        None => current.to_vec(),
        Some(lines) => {
            let mut out: Vec<Param> = Vec::new();
            for line in lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty()) {
                let (name, default) = match line.split_once('=') {
                    Some((n, d)) => (n.trim(), Some(d.to_string())),
                    None => (line, None),
                };
                check_name(name)?;
                if out.iter().any(|p| p.name == name) {
                    return Err(FieldError::new(
                        "params",
                        format!("`{name}` is declared twice"),
                    ));
                }
                let before = current.iter().find(|p| p.name == name);
                let default = match (default, before) {
                    (Some(d), Some(b)) if d == MASK && b.secret => b.default.clone(),
                    (d, _) => d,
                };
                if let Some(d) = &default {
                    check_value("params", name, d)?;
                }
                out.push(Param {
                    name: name.to_string(),
                    default,
                    choices: before.map(|b| b.choices.clone()).unwrap_or_default(),
                    secret: before.is_some_and(|b| b.secret),
                });
            }
            out
        }
    };
    if params.len() > MAX_PARAMS {
        return Err(FieldError::new(
            "params",
            format!("at most {MAX_PARAMS} parameters"),
        ));
    }
    let named = |field: &str, name: &str, params: &mut Vec<Param>| -> Result<usize, FieldError> {
        params.iter().position(|p| p.name == name).ok_or_else(|| {
            FieldError::new(
                field,
                format!("`{name}` is not a declared parameter (--param)"),
            )
        })
    };
    if let Some(lines) = choices {
        for p in params.iter_mut() {
            p.choices.clear();
        }
        for line in lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty()) {
            let Some((name, list)) = line.split_once('=') else {
                return Err(FieldError::new(
                    "param_choices",
                    format!("`{line}`: expected NAME=a|b|c"),
                ));
            };
            let i = named("param_choices", name.trim(), &mut params)?;
            params[i].choices = list.split('|').map(|c| c.trim().to_string()).collect();
        }
    }
    if let Some(names) = secret {
        for p in params.iter_mut() {
            p.secret = false;
        }
        for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            let i = named("secret_params", name, &mut params)?;
            params[i].secret = true;
        }
    }
    for p in &params {
        if let Some(d) = &p.default {
            if !p.choices.is_empty() && !p.choices.contains(d) {
                return Err(FieldError::new(
                    "param_choices",
                    format!(
                        "`{}`: its default `{d}` is not one of {}",
                        p.name,
                        p.choices.join("|")
                    ),
                ));
            }
        }
    }
    Ok(params)
}

/// The values a run runs with: each given one checked (declared, one of its choices), the
/// others their defaults; a required one not given is refused naming it.
pub fn resolve(params: &[Param], given: &BTreeMap<String, String>) -> Result<Values, FieldError> {
    for (k, v) in given {
        let Some(p) = params.iter().find(|p| &p.name == k) else {
            let declared: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
            return Err(FieldError::new(
                "params",
                match declared.is_empty() {
                    true => format!("`{k}`: the job declares no parameter"),
                    false => format!("`{k}` is not declared (the job's: {})", declared.join(", ")),
                },
            ));
        };
        check_value("params", k, v)?;
        if !p.choices.is_empty() && !p.choices.contains(v) {
            return Err(FieldError::new(
                "params",
                format!("`{k}`: `{v}` is not one of {}", p.choices.join("|")),
            ));
        }
    }
    let mut values = Values::default();
    for p in params {
        let Some(v) = given.get(&p.name).or(p.default.as_ref()) else {
            return Err(FieldError::new(
                "params",
                format!(
                    "`{}` is required and has no default: run the job by hand with --param {}=VALUE",
                    p.name, p.name
                ),
            ));
        };
        values.real.insert(p.name.clone(), v.clone());
        values.shown.insert(
            p.name.clone(),
            if p.secret {
                MASK.to_string()
            } else {
                v.clone()
            },
        );
    }
    Ok(values)
}

/// The declaration as people see it: secret defaults masked.
pub fn masked(params: &[Param]) -> Vec<Param> {
    params
        .iter()
        .map(|p| Param {
            default: match p.secret {
                true => p.default.as_ref().map(|_| MASK.to_string()),
                false => p.default.clone(),
            },
            ..p.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_declaration_with_defaults_choices_and_secrets_resolves_a_runs_values() {
        let p = declare(
            Some(&lines(&["REGION=eu", "DAY", "KEY=s3cret"])),
            Some(&lines(&["REGION=eu|us"])),
            Some(&lines(&["KEY"])),
            &[],
        )
        .expect("declared");
        let given = BTreeMap::from([("DAY".to_string(), "2026-12-06".to_string())]);
        let v = resolve(&p, &given).expect("values");
        assert_eq!(v.real["REGION"], "eu");
        assert_eq!(v.real["KEY"], "s3cret");
        assert_eq!(v.shown["KEY"], MASK);
        let err = resolve(&p, &BTreeMap::new()).expect_err("DAY required");
        assert!(err.message.contains("`DAY` is required"), "{}", err.message);
        let bad = BTreeMap::from([
            ("REGION".to_string(), "mars".to_string()),
            ("DAY".into(), "x".into()),
        ]);
        assert!(resolve(&p, &bad)
            .expect_err("choice")
            .message
            .contains("eu|us"));
        let undeclared = BTreeMap::from([("NOPE".to_string(), "1".to_string())]);
        assert!(resolve(&p, &undeclared)
            .expect_err("undeclared")
            .message
            .contains("REGION, DAY, KEY"));
        // A secret default sent back masked keeps its value.
        let again = declare(Some(&lines(&["KEY=***"])), None, None, &p).expect("again");
        assert_eq!(again[0].default.as_deref(), Some("s3cret"));
        assert!(declare(Some(&lines(&["1X=a"])), None, None, &[]).is_err());
        assert!(declare(None, Some(&lines(&["NOPE=a|b"])), None, &p).is_err());
    }
}
