-- A user without vqlsp installed: :checkhealth says so and how to install it,
-- and :VqlspStatus says the server is not running instead of failing.
local vqlsp = require('vqlsp')

return {
  { 'setup() with a command that does not exist', function()
    vqlsp.setup({ cmd = { '/nonexistent/bin/vqlsp', 'serve' } })
    vim.cmd.edit(vim.fn.fnameescape(T.env.VQLSP_DOCUMENT))
    T.eq(#vqlsp.clients(), 0, 'no client')
  end },

  { ':VqlspStatus explains the server is not running', function()
    T.messages = {}
    vim.cmd('VqlspStatus')
    T.ok(#T.messages > 0 and T.messages[#T.messages].msg:find('not running', 1, true), vim.inspect(T.messages))
  end },

  { ':checkhealth vqlsp reports the missing server with an install hint', function()
    vim.cmd('checkhealth vqlsp')
    local report = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
    T.ok(report:find('ERROR `/nonexistent/bin/vqlsp` is not executable', 1, true), report)
    T.ok(report:find('pip install -e <checkout>', 1, true), report)
  end },
}
