"""The project's routes plus `POST /test/submit` (test-only): dispatch inside a request."""

import json

from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from executions import dispatcher
from spine_project.urls import urlpatterns as project_urlpatterns


@csrf_exempt
def submit(request):
    body = json.loads(request.body or b"{}")
    result = dispatcher.dispatch(body["pipeline"], body.get("params", {}), trigger_source="api")
    return JsonResponse({"id": str(result.execution.id)}, status=202)


urlpatterns = [*project_urlpatterns, path("test/submit", submit)]
