// Package sdkhttp is the HTTP protocol between Tempest and the apps that serve functions with
// an Inngest SDK (serve() of the npm inngest package, inngestgo): the sync body an app sends
// (ParseRegister, Function.Config into the registry's shape), the call Tempest makes to run a
// function (NewCall: canonical RFC 8785 body, HMAC signature) and the app's answer
// (ReadAnswer: status, retry headers, ops, streamed answers). It holds no state and makes no
// connections; the adapter drives it, and workflows.SDK turns ops into a run.
package sdkhttp
