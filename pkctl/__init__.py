"""pkctl: the kubectl-like command line client of pocketkube.

It is a thin layer over the shared REST client (``client/``) and the pure API
tables (``api/``); it never imports ``apiserver``, so it works against any
server that speaks the Kubernetes wire protocol, a real cluster included.
Like kubectl it learns resource types from discovery, asks the server for
``meta.k8s.io/v1`` Tables and prints their cells as given, and maps every
failure to one kubectl-style line (``Error from server (NotFound): ...``)
at a single boundary in ``main``; no traceback ever reaches the user.

Modules, one concern each:

* ``main``       argument parsing, dispatch, the error boundary
* ``context``    the per-invocation state: client, discovery, namespace, streams
* ``discovery``  resource types from ``/api``, ``/apis``; TYPE-name resolution
* ``resources``  TYPE/NAME arguments and manifest files (-f)
* ``printers``   table, yaml, json, name, jsonpath and custom-columns output
* ``tabwriter``  Go's text/tabwriter, so columns line up exactly as kubectl's
* ``jsonpath``   kubectl's JSONPath template dialect
* ``threeway``   the three-way patch that client-side ``apply`` sends
* ``transport``  streaming requests (log follow, Table watches) and WebSockets
* ``get``, ``describe``, ``apply``, ``delete``, ``podio`` (logs, exec),
  ``workloads`` (run, expose), ``metadata`` (label, annotate),
  ``info`` (version, cluster-info, api-resources): one module per command group
"""
