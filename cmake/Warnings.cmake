# Warnings applied to every edgeflow target through edgeflow_set_warnings().
function(edgeflow_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
                                           -Wno-missing-field-initializers)
endfunction()
