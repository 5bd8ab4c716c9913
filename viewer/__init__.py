"""The browser UI on viser: panels, scene nodes, compare and the camera-path editor.

No computation lives here: callbacks read widget values, submit studio jobs and write results
back to handles.
"""
