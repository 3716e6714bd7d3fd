//! The checkpoint as an rmcp [`ServerHandler`]: it answers what is about tools itself (the
//! server's info, `tools/list`, `tools/call`, the protocol revisions served) and hands every
//! other method to the service's own handler, unchanged. Each method of the trait is named here,
//! so none falls back to rmcp's default by being forgotten.

use std::borrow::Cow;
use std::time::SystemTime;

use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CancelTaskParams,
    CancelledNotificationParam, CompleteRequestParams, CompleteResult, CustomNotification,
    CustomRequest, CustomResult, GetPromptRequestParams, GetPromptResponse, GetSkillRequestParams,
    GetSkillResult, GetTaskParams, GetTaskResult, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListSkillsResult, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ProtocolVersion, ReadResourceDirectoryRequestParams,
    ReadResourceDirectoryResult, ReadResourceRequestParams, ReadResourceResponse,
    ServerCapabilities, ServerConfig, SubscribeRequestParams, SubscriptionFilter, Tool,
    UnsubscribeRequestParams, UpdateTaskParams,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};

use super::steps::acknowledge;
use super::{Checkpoint, list_ttl_ms};
use crate::policy::ToolSet;

impl<S: ToolSet> ServerHandler for Checkpoint<S> {
    fn get_info(&self) -> ServerConfig {
        let mut capabilities = self.shared.service.extras().get_info().capabilities;
        capabilities.tools = ServerCapabilities::builder().enable_tools().build().tools;
        let mut config = ServerConfig::new(capabilities).with_server_info(S::server_info());
        // A client can pin the approved manifest too.
        if let Some(manifest) = &self.shared.manifest {
            config.meta.get_or_insert_with(Default::default).insert(
                crate::manifest::MANIFEST_META_KEY.to_owned(),
                manifest.clone(),
            );
        }
        match S::instructions() {
            Some(text) => config.with_instructions(text),
            None => config,
        }
    }

    // Everything but tools is the server's own handler's: resources, prompts, completion and
    // logging are not capability-scoped.

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        self.shared
            .service
            .extras()
            .complete(request, context)
            .await
    }

    // Logging and subscriptions are deprecated for the next protocol version, but part of
    // 2025-11-25, which clients speak today.
    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: rmcp::model::SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.shared
            .service
            .extras()
            .set_level(request, context)
            .await
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        self.shared
            .service
            .extras()
            .get_prompt(request, context)
            .await
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        self.shared
            .service
            .extras()
            .list_prompts(request, context)
            .await
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        self.shared
            .service
            .extras()
            .list_resources(request, context)
            .await
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        self.shared
            .service
            .extras()
            .list_resource_templates(request, context)
            .await
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        self.shared
            .service
            .extras()
            .read_resource(request, context)
            .await
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.shared
            .service
            .extras()
            .subscribe(request, context)
            .await
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.shared
            .service
            .extras()
            .unsubscribe(request, context)
            .await
    }

    async fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        self.shared
            .service
            .extras()
            .on_custom_request(request, context)
            .await
    }

    async fn on_cancelled(
        &self,
        notification: CancelledNotificationParam,
        context: NotificationContext<RoleServer>,
    ) {
        self.shared
            .service
            .extras()
            .on_cancelled(notification, context)
            .await;
    }

    async fn on_progress(
        &self,
        notification: ProgressNotificationParam,
        context: NotificationContext<RoleServer>,
    ) {
        self.shared
            .service
            .extras()
            .on_progress(notification, context)
            .await;
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.shared.service.extras().on_initialized(context).await;
    }

    async fn on_roots_list_changed(&self, context: NotificationContext<RoleServer>) {
        self.shared
            .service
            .extras()
            .on_roots_list_changed(context)
            .await;
    }

    async fn on_custom_notification(
        &self,
        notification: CustomNotification,
        context: NotificationContext<RoleServer>,
    ) {
        self.shared
            .service
            .extras()
            .on_custom_notification(notification, context)
            .await;
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        self.shared
            .service
            .extras()
            .get_task(request, context)
            .await
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.shared
            .service
            .extras()
            .update_task(request, context)
            .await
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.shared
            .service
            .extras()
            .cancel_task(request, context)
            .await
    }

    async fn list_skills(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListSkillsResult, ErrorData> {
        self.shared
            .service
            .extras()
            .list_skills(request, context)
            .await
    }

    async fn get_skill(
        &self,
        request: GetSkillRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetSkillResult, ErrorData> {
        self.shared
            .service
            .extras()
            .get_skill(request, context)
            .await
    }

    async fn read_resource_directory(
        &self,
        request: ReadResourceDirectoryRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceDirectoryResult, ErrorData> {
        self.shared
            .service
            .extras()
            .read_resource_directory(request, context)
            .await
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let Some(principal) = self.principal_of(&context) else {
            return Ok(ListToolsResult::with_all_items(Vec::new()));
        };
        let now = SystemTime::now();
        let mut tools = self.shared.router.list_all();
        tools.retain(|tool| self.visible(tool, &principal, now));
        // The list is this caller's: no shared cache may hand it to another.
        Ok(ListToolsResult::with_all_items(tools)
            .with_cache_scope(CacheScope::Private)
            .with_ttl_ms(list_ttl_ms(&principal, now)))
    }

    // rmcp asks for a tool's definition only to check the `Mcp-Param-*` headers of a request
    // against its input schema (SEP-2243), before the call reaches `call_tool`; nothing of it is
    // sent to the client. Authorization stays with `call_tool` and `list_tools`.
    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.shared.router.get(name).cloned()
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Owned(self.shared.protocol_versions.clone())
    }

    // `subscriptions/listen` (2026-07-28) carries list-changed and resource notifications, none
    // of which are capability-scoped: the server's own handler decides what it accepts. A server
    // without one still acknowledges the stream, with what its capabilities advertise (rmcp
    // narrows the filter to them), so a client can always listen.
    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        self.shared
            .service
            .extras()
            .accepted_subscription_filter(requested)
            .or_else(|| Some(requested.supported_by(&self.get_info().capabilities)))
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        self.shared.service.extras().listen(context).await
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let (response, recorded) = self.decide(request, context).await;
        acknowledge(response, recorded).await
    }
}
