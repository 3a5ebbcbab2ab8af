//! The catalog API's one route table. The handler dispatches on it, the
//! definition check finds a request's operation through it (by the same
//! template `infra/openapi.yaml` names), and whether a request is a write
//! (IAM-signed behind API Gateway; the local server checks the signature)
//! is a column of it. A test holds the table and the definition equal for
//! every stack setting.

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Register (or replace) an instance.
    Register,
    /// Deregister an instance.
    Deregister,
    /// Every registration, a page at a time.
    List,
    /// Resolve a service (`GET /catalog/{name}`).
    Resolve,
    /// One version's instances.
    Lookup,
}

/// One route.
#[derive(Debug)]
pub struct Route {
    /// The HTTP method.
    pub method: &'static str,
    /// The path template, exactly as the definition writes it.
    pub template: &'static str,
    /// What it does.
    pub action: Action,
    /// A write: signed with SigV4 (IAM auth on API Gateway).
    pub write: bool,
    /// One of the seed's unscoped write routes, served only when the stack
    /// turns them on (`UnscopedWriteRoutes`).
    pub unscoped: bool,
}

/// Every route, in no particular order: a request takes the route whose
/// template matches with the most literal segments.
pub const ROUTES: &[Route] = &[
    Route {
        method: "POST",
        template: "/catalog/services/{name}/register",
        action: Action::Register,
        write: true,
        unscoped: false,
    },
    Route {
        method: "POST",
        template: "/catalog/services/{name}/deregister",
        action: Action::Deregister,
        write: true,
        unscoped: false,
    },
    Route { method: "POST", template: "/catalog/register", action: Action::Register, write: true, unscoped: true },
    Route { method: "POST", template: "/catalog/deregister", action: Action::Deregister, write: true, unscoped: true },
    Route { method: "GET", template: "/catalog", action: Action::List, write: false, unscoped: false },
    Route { method: "GET", template: "/catalog/{name}", action: Action::Resolve, write: false, unscoped: false },
    Route {
        method: "GET",
        template: "/catalog/{name}/{version}",
        action: Action::Lookup,
        write: false,
        unscoped: false,
    },
];

/// A request's route.
#[derive(Debug)]
pub enum Found {
    /// This route, with the path's segments (from `catalog` on, each
    /// `%XX`-decoded) to read its parameters from.
    Route(&'static Route, Vec<String>),
    /// A route has this path but not this method: it allows `allow`.
    MethodNotAllowed {
        /// The method the path's route allows.
        allow: &'static str,
    },
    /// No route has this path.
    NotFound,
}

impl Route {
    /// How well `segments` fit this route's template: `None` when they do
    /// not, else the number of literal segments (more is a better fit).
    fn fit(&self, segments: &[String]) -> Option<usize> {
        let template: Vec<&str> = self.template.trim_start_matches('/').split('/').collect();
        if template.len() != segments.len() {
            return None;
        }
        let mut literals = 0;
        for (t, s) in template.iter().zip(segments) {
            if t.starts_with('{') {
                continue;
            }
            if t != s {
                return None;
            }
            literals += 1;
        }
        Some(literals)
    }

    /// The value of `{name}` in `segments` (which fit this route).
    pub fn parameter<'s>(&self, name: &str, segments: &'s [String]) -> Option<&'s str> {
        let wanted = format!("{{{name}}}");
        let position = self.template.trim_start_matches('/').split('/').position(|t| t == wanted)?;
        segments.get(position).map(String::as_str)
    }
}

/// The route for `method` and `path` (a stage prefix before `/catalog` is
/// ignored; a trailing `/` too).
pub fn find(method: &str, path: &str) -> Found {
    let Some(start) = path.find("/catalog") else { return Found::NotFound };
    let segments: Vec<String> =
        path[start..].trim_start_matches('/').trim_end_matches('/').split('/').map(crate::percent_decode).collect();
    let best = |same_method: bool| {
        ROUTES
            .iter()
            .filter(|r| (r.method == method) == same_method)
            .filter_map(|r| r.fit(&segments).map(|f| (f, r)))
            .max_by_key(|(f, _)| *f)
            .map(|(_, r)| r)
    };
    if let Some(route) = best(true) {
        return Found::Route(route, segments);
    }
    match best(false) {
        Some(route) => Found::MethodNotAllowed { allow: route.method },
        None => Found::NotFound,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails by panicking
mod tests {
    use super::*;

    fn action(method: &str, path: &str) -> Option<Action> {
        match find(method, path) {
            Found::Route(r, _) => Some(r.action),
            _ => None,
        }
    }

    #[test]
    fn the_most_literal_template_wins_and_a_wrong_method_names_the_right_one() {
        assert_eq!(action("POST", "/catalog/services/orders/register"), Some(Action::Register));
        assert_eq!(action("POST", "/prod/catalog/register/"), Some(Action::Register), "stage prefix, trailing /");
        // A service may be called `register`: reading it is a lookup.
        assert_eq!(action("GET", "/catalog/register"), Some(Action::Resolve));
        assert_eq!(action("GET", "/catalog/orders/1.2.0"), Some(Action::Lookup));
        assert_eq!(action("GET", "/catalog"), Some(Action::List));
        assert!(matches!(find("DELETE", "/catalog/register"), Found::MethodNotAllowed { allow: "POST" }));
        assert!(matches!(find("PUT", "/catalog/orders"), Found::MethodNotAllowed { allow: "GET" }));
        assert!(matches!(find("GET", "/catalog/services/orders/register"), Found::MethodNotAllowed { allow: "POST" }));
        assert!(matches!(find("GET", "/catalog/a/b/c/d/e"), Found::NotFound));
        assert!(matches!(find("GET", "/elsewhere"), Found::NotFound));
    }

    #[test]
    fn the_table_and_the_definition_name_the_same_operations_for_every_setting() {
        for unscoped_writes in [false, true] {
            for signed_reads in [false, true] {
                let config = crate::ApiConfig { unscoped_writes };
                let definition =
                    crate::definition::Definition::compile(&crate::definition::rendered(config, signed_reads)).unwrap();
                let mut documented: Vec<(String, String)> =
                    definition.operations().map(|(m, t)| (m.to_owned(), t.to_owned())).collect();
                let mut routed: Vec<(String, String)> = ROUTES
                    .iter()
                    .filter(|r| unscoped_writes || !r.unscoped)
                    .map(|r| (r.method.to_owned(), r.template.to_owned()))
                    .collect();
                documented.sort();
                routed.sort();
                assert_eq!(documented, routed, "unscoped_writes={unscoped_writes} signed_reads={signed_reads}");
            }
        }
    }

    #[test]
    fn parameters_are_read_decoded() {
        let Found::Route(route, segments) = find("GET", "/catalog/orders/1.2.0%2Bbuild") else { panic!() };
        assert_eq!(route.parameter("name", &segments), Some("orders"));
        assert_eq!(route.parameter("version", &segments), Some("1.2.0+build"));
    }
}
