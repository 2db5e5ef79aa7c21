"""The OpenAI-compatible HTTP API (`/v1/...`), served by the same process and port as the Gradio app.

    from api.app import create_api, Dispatch
    api = create_api(assistant, access, clients)   # a FastAPI app over the answer service
    Middleware(Dispatch, api=api)                   # /v1/... to it, everything else to Gradio

Thin routes only: `schemas` turns a request body into plain values (or an `ApiError` naming the
field), `routes` calls `Assistant.answer` and renders the `Answer`, `streaming` moves the answer's
text from the engine's blocking iterator to the event loop, `keys` checks bearer keys and roles,
`errors` gives every refusal OpenAI's error shape.
"""
