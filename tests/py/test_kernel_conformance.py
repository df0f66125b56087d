"""The official Jupyter kernel conformance suite (jupyter_kernel_test) against
`cnnlens kernel`, started by jupyter_client through the installed kernelspec."""
import pytest
import jupyter_kernel_test


@pytest.mark.usefixtures("jupyter_path")
class CnnlensKernelTests(jupyter_kernel_test.KernelTests):
    kernel_name = "cnnlens"
    language_name = "lens"
    file_extension = ".lens"

    code_hello_world = 'print "hello, world"'
    code_stderr = 'eprint "something went to stderr"'
    completion_samples = [
        {"text": "pri", "matches": {"print"}},
        {"text": "x = lo", "matches": {"load"}},
        {"text": "show grad", "matches": {"gradcam", "gradients"}},
        {"text": "gradcam x cl", "matches": {"class"}},
    ]
    complete_code_samples = ['print "hello, world"', "x = 3", "x = (1 +\n 2)", "# a comment"]
    incomplete_code_samples = ["x = (1 +", "print (2 *\n (3 +"]
    invalid_code_samples = ['print "no closing quote', "x = 1)", ")"]
    code_page_something = "help print"
    code_generate_error = "nosuchcommand"
    code_execute_result = [
        {"code": "6 * 7", "result": "42"},
        {"code": "1 + 2 * 3", "result": "7"},
        {"code": '"a string"', "result": "a string"},
    ]
    code_display_data = [
        {"code": "show zeros 20 20", "mime": "image/png"},
        {"code": "show (sample fashion test 0)", "mime": "image/png"},
    ]
    code_history_pattern = "6 *"  # a glob: must match exactly one sample
    supported_history_operations = ("tail", "range", "search")
    code_inspect_sample = "print"
    code_clear_output = "clear"
