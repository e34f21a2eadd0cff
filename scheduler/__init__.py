"""pocketkube's scheduler: places pending pods on nodes, through the API only.

A separate process (``pocketkube scheduler``) in kube-scheduler's image.
It reads the cluster with informers (pods, nodes, services), decides one pod
at a time, and writes only what the scheduler owns: ``pods/binding``, the
``PodScheduled`` condition through ``pods/status``, Events, and its leader
Lease. Where to read what:

* ``scheduler.py``   - the loop: informer handlers, schedule_one, bind and failure handling;
* ``framework.py``   - plugin protocols, typed Status, filter/score algorithm, the
                       "0/3 nodes are available: ..." message;
* ``plugins/``       - the filters and scores, one small module each;
* ``types.py``       - PodInfo/NodeInfo: requests and node usage, parsed once, exact integers;
* ``cache.py``       - node usage including pods assumed but not yet seen bound;
* ``queue.py``       - active / back-off / unschedulable queues, event-driven retries;
* ``binder.py``      - the write seam (bind, PodScheduled=False) and its fake; binds, the
                       condition and the Events (``client.events.EventRecorder``, deferred
                       while ``Scheduler.busy``) go through the shared client's lean transport;
* ``main.py``        - flags and wiring, leader election (``client.leaderelection``);
* ``testing.py``     - pod/node builders for tests and the benchmark.

Like every component it imports only ``api`` and ``client``.
"""
