"""Where the message path's work runs and in what groups: batch queues, the parse and write children.

README.md beside this file draws the processes, queues and hops of one
message, and says why each exists.
"""
