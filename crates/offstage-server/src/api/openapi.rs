//! `GET /api/openapi.json`: the API described from the handlers' own annotations.

use axum::Json;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(title = "Offstage", description = "Background tasks: launch, watch, kill, over HTTP."),
    paths(
        super::tasks::launch,
        super::tasks::list,
        super::tasks::show,
        super::tasks::kill,
        super::tasks::logs,
        super::tasks::purge,
        super::tasks::task_types,
        super::events::all,
        super::events::task,
        super::schedules::list,
        super::schedules::show,
        super::schedules::put,
        super::schedules::pause,
        super::schedules::resume,
        super::schedules::delete,
        super::shared::list,
        super::shared::show,
        super::shared::set,
        super::shared::events,
        super::session::me,
        super::workers::connect,
        super::health::healthz,
        super::health::readyz,
    ),
    components(schemas(crate::error::ErrorBody, offstage::SharedChange)),
    modifiers(&BearerAuth)
)]
pub(crate) struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build();
        components.add_security_scheme("token", SecurityScheme::Http(scheme));
        openapi.security = Some(vec![SecurityRequirement::new(
            "token",
            Vec::<String>::new(),
        )]);
    }
}

/// The OpenAPI document.
pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
