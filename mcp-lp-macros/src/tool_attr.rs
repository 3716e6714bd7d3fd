//! Parsing and checking one `#[tool(...)]` attribute.

use syn::punctuated::Punctuated;
use syn::spanned::Spanned as _;
use syn::{Attribute, Expr, ExprLit, Lit, LitInt, LitStr, Meta, Token};

/// mcp-lp's own keys, stripped before the attribute reaches rmcp.
const OURS: &[&str] = &[
    "capability",
    "role",
    "db",
    "db_write",
    "requires",
    "timeout",
    "max_output_bytes",
    "rate",
    "approval",
];

/// rmcp's `#[tool]` keys, passed through unchanged.
const RMCP: &[&str] = &[
    "name",
    "title",
    "description",
    "input_schema",
    "output_schema",
    "annotations",
    "icons",
    "meta",
    "local",
];

/// One capability the attribute declares: the kind's marker type, the logical name, and the
/// kinds it also declares (`db_write` declares reading too).
pub(crate) struct CapabilitySpec {
    pub(crate) kind: syn::Path,
    pub(crate) name: LitStr,
    pub(crate) also: Vec<syn::Path>,
}

/// One tool's attribute, split into what mcp-lp records and what rmcp receives.
#[derive(Default)]
pub(crate) struct ToolAttr {
    pub(crate) rmcp: Vec<Meta>,
    pub(crate) name: Option<LitStr>,
    /// In the attribute's order; `role`, `db` and `db_write` are sugar for one of these.
    pub(crate) capabilities: Vec<CapabilitySpec>,
    pub(crate) requires: Vec<LitStr>,
    pub(crate) timeout_nanos: Option<u64>,
    pub(crate) max_output_bytes: Option<LitInt>,
    /// `rate = "60/min"`: calls, and the period in nanoseconds.
    pub(crate) rate: Option<(u32, u64)>,
    /// `approval = "docs:approve"`: the grant a person needs to approve each call.
    pub(crate) approval: Option<LitStr>,
}

/// Whether `attr` is a `#[tool]` attribute, however its path is written.
pub(crate) fn is_tool(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == "tool")
}

pub(crate) fn parse(attr: &Attribute) -> syn::Result<ToolAttr> {
    let metas = match &attr.meta {
        Meta::Path(_) => Punctuated::new(),
        Meta::List(list) => {
            list.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)?
        }
        Meta::NameValue(nv) => {
            return Err(syn::Error::new_spanned(
                nv,
                "write `#[tool]` or `#[tool(key = value, ...)]`",
            ));
        }
    };
    let mut out = ToolAttr::default();
    let mut seen: Vec<String> = Vec::new();
    let mut errors = Errors::default();
    for meta in metas {
        let Some(ident) = meta.path().get_ident() else {
            errors.push(syn::Error::new_spanned(
                meta.path(),
                "expected a key such as `role = \"docs-read\"` or `requires = \"docs:delete\"`",
            ));
            continue;
        };
        let key = ident.to_string();
        if seen.contains(&key) && key != "capability" {
            errors.push(syn::Error::new_spanned(
                ident,
                format!("duplicate key `{key}`; give it once"),
            ));
            continue;
        }
        seen.push(key.clone());
        // The sugar's kinds live in their provider crates: spanned at the key, so that a crate
        // without the provider reads "could not find `mcp_lp_db`" at `db = ...`.
        let span = ident.span();
        let parsed = match key.as_str() {
            "role" => capability_name(&meta, "role", "docs-read").map(|name| {
                out.capabilities.push(CapabilitySpec {
                    kind: syn::parse_quote_spanned!(span=> ::mcp_lp_aws::AwsRole),
                    name,
                    also: Vec::new(),
                });
            }),
            "db" | "db_write"
                if seen
                    .iter()
                    .filter(|k| *k == "db" || *k == "db_write")
                    .count()
                    > 1 =>
            {
                Err(syn::Error::new_spanned(
                    ident,
                    "a tool declares `db` (read) or `db_write` (write), not both; `db_write` also allows reads",
                ))
            }
            "db" => capability_name(&meta, "db", "records").map(|name| {
                out.capabilities.push(CapabilitySpec {
                    kind: syn::parse_quote_spanned!(span=> ::mcp_lp_db::DbRead),
                    name,
                    also: Vec::new(),
                });
            }),
            "db_write" => capability_name(&meta, "db_write", "records").map(|name| {
                out.capabilities.push(CapabilitySpec {
                    kind: syn::parse_quote_spanned!(span=> ::mcp_lp_db::DbWrite),
                    name,
                    also: vec![syn::parse_quote_spanned!(span=> ::mcp_lp_db::DbRead)],
                });
            }),
            "capability" => capability(&meta).map(|spec| out.capabilities.push(spec)),
            "requires" => grants(&meta).map(|v| out.requires = v),
            "timeout" => timeout(&meta).map(|v| out.timeout_nanos = Some(v)),
            "max_output_bytes" => byte_count(&meta).map(|v| out.max_output_bytes = Some(v)),
            "rate" => rate(&meta).map(|v| out.rate = Some(v)),
            "approval" => {
                non_empty_str(&meta, "approval", "docs:approve").map(|v| out.approval = Some(v))
            }
            "name" => non_empty_str(&meta, "name", "readDocument").map(|v| {
                out.name = Some(v);
                out.rmcp.push(meta.clone());
            }),
            k if RMCP.contains(&k) => {
                out.rmcp.push(meta.clone());
                Ok(())
            }
            _ => Err(unknown_key(ident, &key)),
        };
        if let Err(e) = parsed {
            errors.push(e);
        }
    }
    errors.finish().map(|()| out)
}

fn unknown_key(ident: &syn::Ident, key: &str) -> syn::Error {
    let list = |keys: &[&str]| {
        keys.iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let hint = OURS
        .iter()
        .chain(RMCP)
        .filter(|known| edit_distance(key, known) <= 2)
        .min_by_key(|known| edit_distance(key, known))
        .map(|known| format!("did you mean `{known}`? "))
        .unwrap_or_default();
    syn::Error::new_spanned(
        ident,
        format!(
            "unknown key `{key}` in `#[tool]`; {hint}expected one of {} (mcp-lp) or {} (rmcp)",
            list(OURS),
            list(RMCP)
        ),
    )
}

fn str_value(meta: &Meta, key: &str, example: &str) -> syn::Result<LitStr> {
    if let Meta::NameValue(nv) = meta
        && let Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) = &nv.value
    {
        return Ok(s.clone());
    }
    Err(syn::Error::new_spanned(
        meta,
        format!("`{key}` takes a string: `{key} = \"{example}\"`"),
    ))
}

fn non_empty_str(meta: &Meta, key: &str, example: &str) -> syn::Result<LitStr> {
    let lit = str_value(meta, key, example)?;
    if lit.value().is_empty() {
        return Err(syn::Error::new_spanned(
            &lit,
            format!("`{key}` must not be empty; write a name such as `{key} = \"{example}\"`"),
        ));
    }
    Ok(lit)
}

/// `capability(kind = path::To::Kind, name = "...")`: a capability of a kind a provider crate
/// defines (a type implementing `mcp_lp::capability::Kind`).
fn capability(meta: &Meta) -> syn::Result<CapabilitySpec> {
    const USAGE: &str = "`capability` takes a kind and a name: `capability(kind = my_provider::MyKind, name = \"notes\")`";
    let Meta::List(list) = meta else {
        return Err(syn::Error::new_spanned(meta, USAGE));
    };
    let metas = list.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)?;
    let (mut kind, mut name) = (None, None);
    for meta in &metas {
        match meta {
            Meta::NameValue(nv) if nv.path.is_ident("kind") && kind.is_none() => match &nv.value {
                Expr::Path(path) => kind = Some(path.path.clone()),
                other => {
                    return Err(syn::Error::new_spanned(
                        other,
                        "`kind` names the kind's type: `kind = my_provider::MyKind`",
                    ));
                }
            },
            Meta::NameValue(nv) if nv.path.is_ident("name") && name.is_none() => {
                name = Some(non_empty_str(meta, "name", "notes")?);
            }
            other => return Err(syn::Error::new_spanned(other, USAGE)),
        }
    }
    match (kind, name) {
        (Some(kind), Some(name)) => Ok(CapabilitySpec {
            kind,
            name,
            also: Vec::new(),
        }),
        _ => Err(syn::Error::new_spanned(meta, USAGE)),
    }
}

/// `role` and `db`: non-empty here; the full grammar is checked by a `const` assertion that
/// calls `mcp_lp::capability_name_error`, the one definition of it.
fn capability_name(meta: &Meta, key: &str, example: &str) -> syn::Result<LitStr> {
    non_empty_str(meta, key, example)
}

/// `requires = "grant"` or `requires = ["a", "b"]`. Emptiness and repeats are refused here;
/// the grant grammar is checked by a `const` assertion that calls `mcp_lp::grant_syntax_error`.
fn grants(meta: &Meta) -> syn::Result<Vec<LitStr>> {
    const USAGE: &str = "`requires` takes a grant or a list of grants: `requires = \"docs:delete\"` or `requires = [\"docs:read\", \"docs:delete\"]`";
    let Meta::NameValue(nv) = meta else {
        return Err(syn::Error::new_spanned(meta, USAGE));
    };
    let lits: Vec<LitStr> = match &nv.value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => vec![s.clone()],
        Expr::Array(array) => array
            .elems
            .iter()
            .map(|e| match e {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => Ok(s.clone()),
                other => Err(syn::Error::new_spanned(other, USAGE)),
            })
            .collect::<syn::Result<_>>()?,
        other => return Err(syn::Error::new_spanned(other, USAGE)),
    };
    if lits.is_empty() {
        return Err(syn::Error::new_spanned(
            &nv.value,
            "`requires` lists at least one grant; remove the key if the tool needs none",
        ));
    }
    for (i, lit) in lits.iter().enumerate() {
        if lit.value().is_empty() {
            return Err(syn::Error::new_spanned(
                lit,
                "empty grant; write one such as `\"docs:delete\"`",
            ));
        }
        if lits[..i]
            .iter()
            .any(|earlier| earlier.value() == lit.value())
        {
            return Err(syn::Error::new_spanned(
                lit,
                format!("grant `{}` is listed twice", lit.value()),
            ));
        }
    }
    Ok(lits)
}

/// `timeout = "30s"`, parsed by `mcp_lp_grammar::duration` as configuration is.
fn timeout(meta: &Meta) -> syn::Result<u64> {
    let lit = str_value(meta, "timeout", "30s")?;
    let duration = mcp_lp_grammar::duration(&lit.value())
        .map_err(|reason| syn::Error::new_spanned(&lit, reason))?;
    u64::try_from(duration.as_nanos()).map_err(|_| {
        syn::Error::new_spanned(&lit, format!("`{}` is too long a timeout", lit.value()))
    })
}

/// `rate = "60/min"`, parsed by `mcp_lp_grammar::rate` as configuration is.
fn rate(meta: &Meta) -> syn::Result<(u32, u64)> {
    let lit = str_value(meta, "rate", "60/min")?;
    let (calls, per) = mcp_lp_grammar::rate(&lit.value())
        .map_err(|reason| syn::Error::new_spanned(&lit, reason))?;
    let nanos = u64::try_from(per.as_nanos()).map_err(|_| {
        syn::Error::new_spanned(&lit, format!("`{}` is too long a period", lit.value()))
    })?;
    Ok((calls, nanos))
}

fn byte_count(meta: &Meta) -> syn::Result<LitInt> {
    const USAGE: &str = "`max_output_bytes` takes a positive integer: `max_output_bytes = 65536`";
    if let Meta::NameValue(nv) = meta
        && let Expr::Lit(ExprLit {
            lit: Lit::Int(n), ..
        }) = &nv.value
    {
        return match n.base10_parse::<usize>() {
            Ok(v) if v > 0 => Ok(LitInt::new(&v.to_string(), n.span())),
            _ => Err(syn::Error::new_spanned(n, USAGE)),
        };
    }
    Err(syn::Error::new(meta.span(), USAGE))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Collects every error so one compile reports them all.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}
