//! Passes what `nginx-sys` learned about the target nginx (features, OS, version) to the
//! compiler as `cfg` values, so the glue can follow struct changes between nginx versions.
//! `nginx-sys` must be a direct dependency for its `DEP_NGINX_*` values to reach this script.

/// nginx versions whose upstream structures changed in a way the module depends on.
const VERSION_CHECKS: &[(u64, &str)] = &[
    // `headers_in.cookie` (a linked list of the Cookie headers) replaced the `cookies` array.
    (1_023_000, "nginx1_23_0"),
    // Peers gained `refs`/`zombie` and the shared `config` counter (re-resolvable servers).
    (1_027_003, "nginx1_27_3"),
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");

    for (var, cfg) in [
        ("DEP_NGINX_FEATURES_CHECK", "ngx_feature"),
        ("DEP_NGINX_OS_CHECK", "ngx_os"),
    ] {
        println!("cargo::rerun-if-env-changed={var}");
        let values = std::env::var(var).unwrap_or_else(|_| "any()".to_string());
        println!("cargo::rustc-check-cfg=cfg({cfg}, values({values}))");
    }
    println!("cargo::rerun-if-env-changed=DEP_NGINX_FEATURES");
    if let Ok(features) = std::env::var("DEP_NGINX_FEATURES") {
        for feature in features.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            println!("cargo::rustc-cfg=ngx_feature=\"{feature}\"");
        }
    }
    println!("cargo::rerun-if-env-changed=DEP_NGINX_OS");
    if let Ok(os) = std::env::var("DEP_NGINX_OS") {
        println!("cargo::rustc-cfg=ngx_os=\"{os}\"");
    }

    for (_, cfg) in VERSION_CHECKS {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
    }
    println!("cargo::rustc-check-cfg=cfg(ngx_upstream_sid)");
    // cargo-fuzz builds the logic with `--cfg fuzzing` (fuzz/).
    println!("cargo::rustc-check-cfg=cfg(fuzzing)");
    println!("cargo::rerun-if-env-changed=DEP_NGINX_VERSION_NUMBER");
    let version = std::env::var("DEP_NGINX_VERSION_NUMBER")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(version) = version {
        for (min, cfg) in VERSION_CHECKS {
            if version >= *min {
                println!("cargo::rustc-cfg={cfg}");
            }
        }
        // `server ... route=LABEL` (nginx 1.29.6 and later) is kept in a `sid` field that the
        // upstream structures have when nginx is built with its sticky module or with
        // `--with-compat`.
        if version >= 1_029_006 && (has_feature("compat") || has_define("NGX_HTTP_UPSTREAM_SID")) {
            println!("cargo::rustc-cfg=ngx_upstream_sid");
        }
    }
}

/// Whether nginx-sys found `feature` in the nginx build.
fn has_feature(feature: &str) -> bool {
    std::env::var("DEP_NGINX_FEATURES").is_ok_and(|f| f.split(',').any(|x| x.trim() == feature))
}

/// Whether the configured nginx tree defines `name` (its `ngx_auto_config.h`).
fn has_define(name: &str) -> bool {
    println!("cargo::rerun-if-env-changed=DEP_NGINX_BUILD_DIR");
    let Ok(dir) = std::env::var("DEP_NGINX_BUILD_DIR") else {
        return false;
    };
    let path = std::path::Path::new(&dir).join("ngx_auto_config.h");
    println!("cargo::rerun-if-changed={}", path.display());
    std::fs::read_to_string(path).is_ok_and(|h| {
        h.lines()
            .any(|l| l.split_whitespace().take(2).eq(["#define", name]))
    })
}
