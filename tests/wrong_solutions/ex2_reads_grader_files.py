"""Wrong on purpose (abuse): loads the grader's own installed package from disk under another name (the import
blocker watches the name gconv_edu) and returns its answers. Where the grader's files are readable this scores full
marks; in the Gradescope build the student's user cannot read them, and it must score zero."""

import importlib.util
import os
import sys


def _grader():
    for folder in sys.path:
        package = os.path.join(folder, "gconv_edu")
        if os.path.isfile(os.path.join(package, "__init__.py")):
            spec = importlib.util.spec_from_file_location(
                "not_the_grader", os.path.join(package, "__init__.py"), submodule_search_locations=[package]
            )
            module = importlib.util.module_from_spec(spec)
            sys.modules["not_the_grader"] = module
            spec.loader.exec_module(module)
            return module
    raise RuntimeError("grader not found")


def group_slices(c_in, c_out, groups):
    return _grader().groups.group_slices(c_in, c_out, groups)


def conv_cost(c_in, c_out, kernel_size, out_size, groups, bias=True):
    from importlib import import_module

    geometry = import_module("not_the_grader.geometry") if "not_the_grader" in sys.modules else _grader().geometry
    geom = geometry.ConvGeometry.from_layer(
        c_in, c_out, kernel_size, groups=groups, bias=bias,
        height=out_size[0] + kernel_size[0] - 1, width=out_size[1] + kernel_size[1] - 1,
    )
    return geom.params, geom.macs
