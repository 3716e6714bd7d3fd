//! `#[mcp_lp::server]`: the tool table, rmcp's router and the capability checks.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned as _;
use syn::{Expr, ExprLit, FnArg, ImplItem, ItemImpl, Lit, LitStr, Meta, Token};

use crate::tool_attr::{self, Errors, ToolAttr};

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut item_impl = match syn::parse2::<ItemImpl>(item.clone()) {
        Ok(item_impl) => item_impl,
        Err(_) => {
            let error = syn::Error::new_spanned(
                &item,
                "`#[mcp_lp::server]` goes on an impl block whose methods are marked `#[tool]`",
            )
            .to_compile_error();
            return quote!(#error #item);
        }
    };
    match try_expand(attr, &mut item_impl) {
        Ok(tokens) => tokens,
        Err(error) => {
            // Still emit the impl, without the `#[tool]` attributes, so the rest of the crate
            // and the IDE keep working while the attribute is fixed.
            strip_tool_attrs(&mut item_impl);
            let error = error.to_compile_error();
            quote!(#error #item_impl)
        }
    }
}

struct ServerArgs {
    instructions: Option<LitStr>,
    /// The type's own `rmcp::ServerHandler` impl serves everything but tools.
    handler: bool,
}

fn parse_server_args(attr: TokenStream) -> syn::Result<ServerArgs> {
    let metas = syn::parse::Parser::parse2(Punctuated::<Meta, Token![,]>::parse_terminated, attr)?;
    let mut args = ServerArgs {
        instructions: None,
        handler: false,
    };
    for meta in metas {
        match &meta {
            Meta::Path(path) if path.is_ident("handler") && !args.handler => args.handler = true,
            Meta::NameValue(nv) if nv.path.is_ident("instructions") => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) if args.instructions.is_none() => {
                    args.instructions = Some(s.clone());
                }
                Expr::Lit(ExprLit {
                    lit: Lit::Str(_), ..
                }) => {
                    return Err(syn::Error::new_spanned(
                        &meta,
                        "duplicate key `instructions`; give it once",
                    ));
                }
                _ => {
                    return Err(syn::Error::new_spanned(
                        &nv.value,
                        "`instructions` takes a string: `instructions = \"...\"`",
                    ));
                }
            },
            _ => {
                return Err(syn::Error::new_spanned(
                    &meta,
                    "unknown key in `#[mcp_lp::server]`; expected `instructions = \"...\"` or `handler` (the type's own `rmcp::ServerHandler` serves resources, prompts, completion and logging)",
                ));
            }
        }
    }
    Ok(args)
}

struct Tool {
    name: String,
    name_span: proc_macro2::Span,
    attr: ToolAttr,
    fn_ident: syn::Ident,
    arg_types: Vec<syn::Type>,
}

fn try_expand(attr: TokenStream, item_impl: &mut ItemImpl) -> syn::Result<TokenStream> {
    let args = parse_server_args(attr)?;
    if let Some((_, path, _)) = &item_impl.trait_ {
        return Err(syn::Error::new_spanned(
            path,
            "`#[mcp_lp::server]` goes on an inherent impl block (`impl MyServer { ... }`), not a trait impl",
        ));
    }

    let mut errors = Errors::default();
    let mut tools: Vec<Tool> = Vec::new();
    let mut marked = 0usize;
    for item in &mut item_impl.items {
        let ImplItem::Fn(method) = item else { continue };
        let positions: Vec<usize> = method
            .attrs
            .iter()
            .enumerate()
            .filter(|(_, a)| tool_attr::is_tool(a))
            .map(|(i, _)| i)
            .collect();
        let Some(&at) = positions.first() else {
            continue;
        };
        marked += 1;
        if let Some(&again) = positions.get(1) {
            errors.push(syn::Error::new_spanned(
                &method.attrs[again],
                "duplicate `#[tool]` attribute; merge its keys into one `#[tool(...)]`",
            ));
            continue;
        }
        let parsed = match tool_attr::parse(&method.attrs[at]) {
            Ok(parsed) => parsed,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let rmcp_args = &parsed.rmcp;
        method.attrs[at] = syn::parse_quote!(#[rmcp::tool(#(#rmcp_args),*)]);
        let (name, name_span) = match &parsed.name {
            Some(lit) => (lit.value(), lit.span()),
            None => (method.sig.ident.to_string(), method.sig.ident.span()),
        };
        if tools.iter().any(|t| t.name == name) {
            errors.push(syn::Error::new(
                name_span,
                format!("two tools are named `{name}`; give one a different `name = \"...\"`"),
            ));
            continue;
        }
        let arg_types = method
            .sig
            .inputs
            .iter()
            .filter_map(|arg| match arg {
                FnArg::Typed(pat) => Some((*pat.ty).clone()),
                FnArg::Receiver(_) => None,
            })
            .collect();
        tools.push(Tool {
            name,
            name_span,
            attr: parsed,
            fn_ident: method.sig.ident.clone(),
            arg_types,
        });
    }
    if marked == 0 {
        errors.push(syn::Error::new_spanned(
            &item_impl.self_ty,
            "`#[mcp_lp::server]` found no `#[tool]` method in this impl block; mark a method `#[tool]` or remove `#[mcp_lp::server]`",
        ));
    }
    errors.finish()?;

    let assertions = tools.iter().map(assertions);
    let policies = tools.iter().map(policy);
    for tool in &tools {
        item_impl.items.push(syn::parse2(capability_check(tool))?);
    }
    let instructions = args
        .instructions
        .map(|text| quote!(fn instructions() -> ::core::option::Option<&'static str> { ::core::option::Option::Some(#text) }));
    let extras = if args.handler {
        quote! {
            type Extras = Self;
            fn extras(&self) -> &Self {
                self
            }
        }
    } else {
        quote! {
            type Extras = ::mcp_lp::NoExtras;
            fn extras(&self) -> &::mcp_lp::NoExtras {
                &::mcp_lp::NoExtras
            }
        }
    };
    let self_ty = &item_impl.self_ty;
    let (impl_generics, ty_generics, where_clause) = item_impl.generics.split_for_impl();

    Ok(quote! {
        const _: () = {
            // rmcp's macros expand to paths starting `rmcp::`; this makes them resolve without
            // the user depending on rmcp directly.
            use ::mcp_lp::__private::rmcp;

            #(#assertions)*

            #[rmcp::tool_router(router = __mcp_lp_tool_router)]
            #item_impl

            impl #impl_generics ::mcp_lp::ToolSet for #self_ty #ty_generics #where_clause {
                #extras

                fn tool_router() -> rmcp::handler::server::router::tool::ToolRouter<Self> {
                    Self::__mcp_lp_tool_router()
                }

                fn policies() -> &'static [::mcp_lp::ToolPolicy] {
                    const POLICIES: &[::mcp_lp::ToolPolicy] = &[#(#policies),*];
                    POLICIES
                }

                fn server_info() -> rmcp::model::Implementation {
                    rmcp::model::Implementation::new(
                        ::core::env!("CARGO_PKG_NAME"),
                        ::core::env!("CARGO_PKG_VERSION"),
                    )
                }

                #instructions
            }
        };
    })
}

/// Compile-time checks of the names and grants, spanned at their literals.
fn assertions(tool: &Tool) -> TokenStream {
    let names = tool.attr.capabilities.iter().map(|c| {
        let lit = &c.name;
        quote_spanned!(lit.span()=> const _: () = ::mcp_lp::__private::assert_capability_name(#lit);)
    });
    let grants = tool.attr.requires.iter().chain(&tool.attr.approval).map(
        |lit| quote_spanned!(lit.span()=> const _: () = ::mcp_lp::__private::assert_grant(#lit);),
    );
    quote!(#(#names)* #(#grants)*)
}

fn policy(tool: &Tool) -> TokenStream {
    let name = LitStr::new(&tool.name, tool.name_span);
    let capabilities = tool.attr.capabilities.iter().map(|c| {
        let (kind, name) = (&c.kind, &c.name);
        quote!(::mcp_lp::capability::Declaration::of::<#kind>(#name))
    });
    let capabilities = (!tool.attr.capabilities.is_empty())
        .then(|| quote!(.with_capabilities(&[#(#capabilities),*])));
    let requires = &tool.attr.requires;
    let requires = (!requires.is_empty()).then(|| quote!(.with_requires(&[#(#requires),*])));
    let timeout = tool
        .attr
        .timeout_nanos
        .map(|n| quote!(.with_timeout(::core::time::Duration::from_nanos(#n))));
    let max_output = tool
        .attr
        .max_output_bytes
        .as_ref()
        .map(|n| quote!(.with_max_output_bytes(#n)));
    let rate = tool
        .attr
        .rate
        .map(|(calls, nanos)| quote!(.with_rate(::mcp_lp::__private::rate(#calls, #nanos))));
    let approval = tool
        .attr
        .approval
        .as_ref()
        .map(|grant| quote!(.with_approval(#grant)));
    quote!(::mcp_lp::ToolPolicy::new(#name) #capabilities #requires #timeout #max_output #rate #approval)
}

/// A never-called function whose body only type-checks when every privileged argument of the
/// handler is declared by the tool's attribute (see `mcp_lp::capability`).
fn capability_check(tool: &Tool) -> TokenStream {
    let check_fn = format_ident!("__mcp_lp_capabilities_of_{}", tool.fn_ident);
    // One impl per kind, however many names of it the tool declares.
    let mut kinds: Vec<&syn::Path> = Vec::new();
    for capability in &tool.attr.capabilities {
        for kind in std::iter::once(&capability.kind).chain(&capability.also) {
            let seen = kinds
                .iter()
                .any(|k| quote!(#k).to_string() == quote!(#kind).to_string());
            if !seen {
                kinds.push(kind);
            }
        }
    }
    let declared = kinds
        .iter()
        .map(|kind| quote!(impl ::mcp_lp::capability::Declares<#kind> for Declared {}));
    let probes = tool.arg_types.iter().map(|ty| {
        quote_spanned!(ty.span()=> ::mcp_lp::__private::Probe::<Declared, #ty>::new().check();)
    });
    quote! {
        #[doc(hidden)]
        #[allow(dead_code, non_snake_case, clippy::all)]
        fn #check_fn() {
            struct Declared;
            #(#declared)*
            #[allow(unused_imports)]
            use ::mcp_lp::__private::NotACapability as _;
            #(#probes)*
        }
    }
}

fn strip_tool_attrs(item_impl: &mut ItemImpl) {
    for item in &mut item_impl.items {
        if let ImplItem::Fn(method) = item {
            method.attrs.retain(|a| !tool_attr::is_tool(a));
        }
    }
}
