//! The embedded `web/` directory.

use actix_web::{HttpRequest, HttpResponse, http::header};

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ts") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Looks a request path up among the embedded files (`/` is `index.html`).
pub(crate) fn find(path: &str) -> Option<(&'static str, &'static [u8])> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "index.html" } else { rel };
    ASSETS
        .iter()
        .find(|(p, _)| *p == rel)
        .map(|(p, b)| (*p, *b))
}

pub(crate) async fn serve(req: HttpRequest) -> HttpResponse {
    match find(req.path()) {
        Some((path, body)) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, content_type(path)))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(body),
        None => HttpResponse::NotFound()
            .content_type("text/plain")
            .body("not found\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dashboard_is_embedded_and_typed() {
        let (path, body) = find("/").expect("web/index.html is embedded");
        assert_eq!(path, "index.html");
        assert!(std::str::from_utf8(body).is_ok_and(|t| t.contains("<html")));
        assert_eq!(content_type("pkg/lanmesh_wasm_bg.wasm"), "application/wasm");
        assert!(find("/no/such/file").is_none());
        assert!(find("/../Cargo.toml").is_none());
    }
}
